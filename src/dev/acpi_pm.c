/* ACPI fixed hardware registers, ACPI 6.4:
 *   4.8.4.1     PM1 Event Grouping: 4.8.4.1.1 PM1 Status (Table 4.11,
 *               write-1-to-clear), 4.8.4.1.2 PM1 Enable (Table 4.12),
 *   4.8.4.2.1   PM1 Control (Table 4.13: SCI_EN, SLP_TYP, SLP_EN),
 *   4.8.3.1.1.1 Fixed Power Button (PWRBTN_STS / PWRBTN_EN -> SCI),
 *   4.8.3.2     Sleeping/Wake Control (SLP_TYP then SLP_EN),
 *   4.8.4.6     Reset Register (FADT RESET_REG / RESET_VALUE).
 * The SLP_TYP value for soft-off is what the DSDT's \_S5 package says.
 *
 * Locking: one mutex protects the registers and the SCI level. The
 * on_request callback is always called with that mutex released, from the
 * vCPU thread that made the access.
 */
#include "dev/acpi_pm.h"
#include "layout.h"

#include <stdlib.h>
#include <string.h>

/* PM1_STS / PM1_EN bits (Tables 4.11, 4.12). */
#define PM1_TMR         (1u << 0)
#define PM1_BM_STS      (1u << 4)
#define PM1_GBL         (1u << 5)
#define PM1_PWRBTN      (1u << 8)
#define PM1_SLPBTN      (1u << 9)
#define PM1_RTC         (1u << 10)
#define PM1_PCIEXP_WAKE (1u << 14)
#define PM1_WAK_STS     (1u << 15)
/* Enable bits a guest may set; reserved ones read back 0. */
#define PM1_EN_MASK     (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_PCIEXP_WAKE)

/* PM1_CNT bits (Table 4.13). */
#define CNT_SCI_EN        (1u << 0)
#define CNT_BM_RLD        (1u << 1)
#define CNT_GBL_RLS       (1u << 2) /* write-only */
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_TYP       (7u << CNT_SLP_TYP_SHIFT)
#define CNT_SLP_EN        (1u << 13) /* write-only */
#define CNT_STORED        (CNT_BM_RLD | CNT_SLP_TYP)

struct acpi_pm {
    pthread_mutex_t lock;
    struct irq_line sci;
    void (*on_request)(void *opaque, enum guest_request);
    void *opaque;
    uint16_t sts, en, cnt;
    int sci_level;
};

/* The SCI is a level: asserted while an enabled fixed event is pending.
 * Only the power button can become pending here. */
static void sci_update(struct acpi_pm *pm)
{
    int level = (pm->sts & pm->en & PM1_PWRBTN) != 0;
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_line_set(&pm->sci, level);
    }
}

/* Splits an access into the byte lanes that fall inside a block of
 * block_len bytes. For lane i (byte offset + i of the block), *mask gets
 * 0xff << (8 * (offset + i)) over a little-endian image of the block, and
 * *val the written bytes placed the same way. Lanes outside the block are
 * dropped (and read as 0xff). Returns false if no lane is inside. */
static bool lanes(uint64_t offset, const uint8_t *data, uint32_t len, unsigned block_len,
                  uint32_t *mask, uint32_t *val)
{
    *mask = 0;
    *val = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (offset >= block_len || i >= block_len - offset)
            break;
        unsigned pos = (unsigned)offset + i;
        *mask |= 0xffu << (8 * pos);
        *val |= (uint32_t)data[i] << (8 * pos);
    }
    return *mask != 0;
}

/* Copies the lanes of a little-endian register image that fall inside the
 * block into data; other bytes stay 0xff. */
static void read_lanes(uint64_t offset, uint8_t *data, uint32_t len, unsigned block_len,
                       uint32_t image)
{
    memset(data, 0xff, len);
    for (uint32_t i = 0; i < len; i++) {
        if (offset >= block_len || i >= block_len - offset)
            break;
        data[i] = (uint8_t)(image >> (8 * ((unsigned)offset + i)));
    }
}

void acpi_pm_evt_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct acpi_pm *pm = opaque;
    if (!data || len == 0)
        return;
    pthread_mutex_lock(&pm->lock);
    if (!is_write) {
        read_lanes(offset, data, len, PORT_ACPI_PM1A_EVT_LEN, pm->sts | ((uint32_t)pm->en << 16));
    } else {
        uint32_t mask, val;
        if (lanes(offset, data, len, PORT_ACPI_PM1A_EVT_LEN, &mask, &val)) {
            /* Status: writing 1 clears, 0 leaves alone. */
            pm->sts &= (uint16_t) ~(val & mask);
            /* Enable: plain read/write for the lanes written. */
            uint16_t en_mask = (uint16_t)(mask >> 16);
            uint16_t en_val = (uint16_t)(val >> 16);
            pm->en = (uint16_t)((pm->en & ~en_mask) | (en_val & en_mask)) & PM1_EN_MASK;
            sci_update(pm);
        }
    }
    pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_cnt_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct acpi_pm *pm = opaque;
    if (!data || len == 0)
        return;
    bool poweroff = false;
    pthread_mutex_lock(&pm->lock);
    if (!is_write) {
        /* No SMI handshake: the machine is always in ACPI mode. */
        read_lanes(offset, data, len, PORT_ACPI_PM1A_CNT_LEN, pm->cnt | CNT_SCI_EN);
    } else {
        uint32_t mask, val;
        if (lanes(offset, data, len, PORT_ACPI_PM1A_CNT_LEN, &mask, &val)) {
            pm->cnt = (uint16_t)(((pm->cnt & ~mask) | (val & mask)) & CNT_STORED);
            /* SLP_EN starts the transition to the state in SLP_TYP (which
             * may come in the same write). Only S5 exists here: other
             * sleep states are ignored and the guest keeps running. */
            if ((val & mask & CNT_SLP_EN) &&
                ((pm->cnt & CNT_SLP_TYP) >> CNT_SLP_TYP_SHIFT) == ACPI_SLP_TYP_S5)
                poweroff = true;
        }
    }
    pthread_mutex_unlock(&pm->lock);
    if (poweroff && pm->on_request)
        pm->on_request(pm->opaque, GUEST_REQUEST_POWEROFF);
}

void acpi_pm_reset_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct acpi_pm *pm = opaque;
    if (!data || len == 0)
        return;
    if (!is_write) {
        /* Write-only register: reads give 0 in its one byte. */
        memset(data, 0xff, len);
        if (offset == 0)
            data[0] = 0;
        return;
    }
    if (offset == 0 && data[0] == ACPI_RESET_VALUE && pm->on_request)
        pm->on_request(pm->opaque, GUEST_REQUEST_REBOOT);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->sts |= PM1_PWRBTN;
    sci_update(pm);
    pthread_mutex_unlock(&pm->lock);
}

struct acpi_pm *acpi_pm_new(struct irq_line sci,
                            void (*on_request)(void *opaque, enum guest_request), void *opaque)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return NULL;
    if (pthread_mutex_init(&pm->lock, NULL) != 0) {
        free(pm);
        return NULL;
    }
    pm->sci = sci;
    pm->on_request = on_request;
    pm->opaque = opaque;
    return pm;
}

void acpi_pm_free(struct acpi_pm *pm)
{
    if (!pm)
        return;
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&pm->lock);
    st->sts = pm->sts;
    st->en = pm->en;
    st->cnt = pm->cnt;
    st->sci_level = (uint8_t)pm->sci_level;
    pthread_mutex_unlock(&pm->lock);
}

int acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *st)
{
    if ((st->en & ~PM1_EN_MASK) || (st->cnt & ~CNT_STORED) || st->sci_level > 1)
        return -1;
    pthread_mutex_lock(&pm->lock);
    pm->sts = st->sts;
    pm->en = st->en;
    pm->cnt = st->cnt;
    sci_update(pm); /* the level these registers make, not the file's */
    pthread_mutex_unlock(&pm->lock);
    return 0;
}
