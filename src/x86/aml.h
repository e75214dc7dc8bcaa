/* A tiny AML byte-code builder: just enough to write a DSDT by hand.
 *
 * Implements, from ACPI 6.4:
 *   20.2.2   Name objects encoding (NameSeg, NameString, prefixes)
 *   20.2.3   Data objects encoding (integers, strings, EISA IDs)
 *   20.2.4   Package length encoding (PkgLength, 1 to 4 bytes)
 *   20.2.5.1 Namespace modifier objects (DefName, DefScope)
 *   20.2.5.2 Named objects (DefDevice)
 *   20.2.5.4 Expression opcodes used as data (DefBuffer, DefPackage)
 *   6.4.2.1  IRQ descriptor (IRQNoFlags form)
 *   6.4.2.5  I/O port descriptor
 *   6.4.2.9  End tag
 *   6.4.3.4  32-bit fixed memory range descriptor (Memory32Fixed)
 *   6.4.3.5.2 DWord address space descriptor (DWordMemory)
 *   6.4.3.5.3 Word address space descriptor (WordIO, WordBusNumber)
 *   6.4.3.6  Extended interrupt descriptor (Interrupt)
 *
 * Usage: objects are written in order into a caller-supplied buffer.
 * Scopes, devices, packages and resource templates are opened with a
 * *_begin call and closed with aml_end(); the PkgLength (and for buffers
 * the size, for packages the element count) is filled in on close, so
 * callers never count bytes. Errors (buffer too small, bad name, unbalanced
 * blocks) are sticky: later calls do nothing and aml_ok() returns false.
 * Nothing is ever written at or past buf + cap.
 *
 *   aml_name(&a, "\\_S5");
 *   aml_package_begin(&a);
 *   aml_integer(&a, 5); aml_integer(&a, 5); aml_integer(&a, 0); aml_integer(&a, 0);
 *   aml_end(&a);
 */
#ifndef VMLET_X86_AML_H
#define VMLET_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml_block {
    size_t start; /* offset just after the opcode: PkgLength goes here */
    uint8_t kind;
    unsigned nelems; /* packages: complete elements seen so far */
};

struct aml {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool err;
    int depth;
    struct aml_block open[AML_MAX_DEPTH];
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* True if no error so far and every block has been closed. */
bool aml_ok(const struct aml *a);
static inline size_t aml_len(const struct aml *a)
{
    return a->len;
}

/* Name(path, <object>): the next data object written is the value. */
void aml_name(struct aml *a, const char *path);

/* Data objects; inside a package each one counts as an element. */
void aml_integer(struct aml *a, uint64_t v);    /* Zero/One/Byte/Word/DWord/QWord */
void aml_string(struct aml *a, const char *s);  /* printable ASCII */
void aml_eisaid(struct aml *a, const char *id); /* EisaId("PNP0501") */
void aml_buffer(struct aml *a, const uint8_t *data, size_t n);

/* Blocks: close each with aml_end(). */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *name);
void aml_package_begin(struct aml *a);   /* up to 255 elements */
void aml_resources_begin(struct aml *a); /* ResourceTemplate(); end tag added on close */
/* Method(name, nargs, NotSerialized): nargs 0..7; its statements follow. */
void aml_method_begin(struct aml *a, const char *name, unsigned nargs);
void aml_end(struct aml *a);

/* Statements, only valid inside aml_method_begin(). */
void aml_notify(struct aml *a, const char *path, uint64_t value); /* Notify(path, value) */

/* Resource descriptors, only valid inside aml_resources_begin(). */
void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align,
            uint8_t len);                           /* IO(Decode16, ...) */
void aml_irq_noflags(struct aml *a, uint16_t mask); /* IRQNoFlags(){...}: bit n = IRQ n */
/* Interrupt(ResourceConsumer, Edge or Level, ActiveHigh, Exclusive) {gsi} */
void aml_interrupt(struct aml *a, uint32_t gsi, bool edge);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable);
/* Address space descriptors a bridge produces for its children: fixed
 * [min, max] (MinFixed, MaxFixed, PosDecode, ResourceProducer), granularity
 * and translation 0, length max - min + 1. */
void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max); /* WordBusNumber */
void aml_word_io(struct aml *a, uint16_t min, uint16_t max);         /* WordIO, EntireRange */
/* DWordMemory, ReadWrite; cacheable selects Cacheable over NonCacheable. */
void aml_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool cacheable);

/* Encodes a PkgLength for a body of body_len bytes (the PkgLength counts
 * itself too). Returns the number of bytes written to out (1..4), or 0 if
 * the body is too large to encode (2^28 bytes or more). */
int aml_pkglength(uint8_t out[4], size_t body_len);

#endif
