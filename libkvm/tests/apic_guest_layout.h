/* Memory map, ports and event codes shared by the APIC guest programs
 * (apic_payloads.S) and their host side (apic_guest_test.cc). Plain
 * #defines: the assembler includes it too. */
#ifndef SSIHV_KVM_TESTS_APIC_GUEST_LAYOUT_H_
#define SSIHV_KVM_TESTS_APIC_GUEST_LAYOUT_H_

#define AT_RAM 0x100000       /* guest RAM [0, 1 MiB) */
#define AT_GDT 0x500          /* the boot GDT (x86_boot.h) */
#define AT_IDT 0x1000         /* 256 64-bit gates */
#define AT_PML4 0x9000        /* identity page tables (x86_boot.h) */
#define AT_CODE 0x10000       /* apic_code */
#define AT_SIPI_VECTOR 0x20   /* the AP starts at 0x20000 */
#define AT_TRAMPOLINE 0x20000 /* apic_trampoline */
#define AT_BSP_STACK 0x70000
#define AT_AP_STACK 0x78000

/* Mailbox. */
#define AT_AP_READY 0x3000    /* dword: the AP is set up, interrupts on */
#define AT_AP_COUNT 0x3004    /* dword: interrupts the AP took */
#define AT_NMI_COUNT 0x300c   /* dword */
#define AT_X2APIC_MODE 0x3010 /* byte per vCPU: EOI through the MSR */
#define AT_AP_ENTRY 0x3020    /* qword: where the trampoline goes */
#define AT_GDTR 0x3030        /* limit, base: loaded by the trampoline */
#define AT_IDTR 0x3040
#define AT_VEC_ACTION 0x3100 /* byte per vector: what the handler does */
#define AT_VEC_COUNT 0x3200  /* dword per vector: how often it ran */

#define ACT_NO_EOI 1     /* leave the vector in service */
#define ACT_LOWER_LINE 2 /* drive I/O APIC pin 5 low first */

/* Ports. */
#define AT_DATA_PORT 0xe9 /* + vCPU index: events */
#define AT_LINE_PORT 0xe8 /* bit 7 level, bits 4:0 I/O APIC pin */
#define AT_LINE_LEVEL 0x80
#define AT_DONE_PORT 0xf4

/* Events: (kind << 16) | value on the vCPU's data port; a VAL32 is
 * followed by the raw 32-bit value on the same port. */
#define EV_INT 1 /* an interrupt handler ran: vector */
#define EV_NMI 2
#define EV_GP 3 /* #GP (an MSR the guest may not touch) */
#define EV_MARK 4
#define EV_VAL32 5
#define EV_SIPI_CS 6 /* the AP's CS right after SIPI */
#define EV_SIPI_IP 7 /* the IP of its probe instruction */

/* Timer test: one-shot 20 ms at divide-by-1, periodic 10 ms at /16. */
#define AT_ONESHOT_COUNT 20000000
#define AT_PERIODIC_COUNT 625000
#define AT_PERIODIC_DIVIDE 0x3 /* TDCR: divide by 16 */
#define AT_PERIODIC_TICKS 5

#endif /* SSIHV_KVM_TESTS_APIC_GUEST_LAYOUT_H_ */
