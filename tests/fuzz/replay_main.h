/* The main() of a fuzz target's replay build (-DVMLET_FUZZ_STANDALONE, any
 * compiler): feeds each file named on the command line to
 * LLVMFuzzerTestOneInput, in a buffer of exactly the file's size as
 * libFuzzer gives it, so that an overread shows under ASan. Included at the
 * end of the target. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static uint8_t buf[2 << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy)
            return 1;
        memcpy(copy, buf, n);
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
