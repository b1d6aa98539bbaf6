/* Guest programs for the user irqchip (apic_guest_test.cc, label kvm):
 * 64-bit code at AT_CODE that programs the local APIC (xAPIC page and
 * x2APIC MSRs), the I/O APIC and the timer, with interrupt handlers that
 * report on the data port, and a real-mode trampoline at the SIPI page that
 * takes the AP to long mode. r15 = the vCPU's index (its data port is
 * 0xe9 + r15), r14 = the xAPIC page. apic_guest_layout.h has the map. */
#include "apic_guest_layout.h"

#define PAYLOAD(name) .globl name##_start, name##_end; name##_start:
#define END(name) name##_end:
#define ENTRY(name) .globl name; name:

#define APIC_PAGE 0xfee00000
#define IOAPIC 0xfec00000

	.section .rodata, "a"

/* (kind << 16) | val on the data port; val is an immediate or a 32-bit
 * register other than eax/edx. */
.macro LOG kind, val
	push %rax
	push %rdx
	mov $(\kind << 16), %eax
	or \val, %eax
	lea AT_DATA_PORT(%r15), %rdx
	out %eax, %dx
	pop %rdx
	pop %rax
.endm

/* A 32-bit value (a register other than eax/edx). */
.macro LOG32 reg
	push %rax
	push %rdx
	lea AT_DATA_PORT(%r15), %rdx
	mov $(EV_VAL32 << 16), %eax
	out %eax, %dx
	mov \reg, %eax
	out %eax, %dx
	pop %rdx
	pop %rax
.endm

/* Spins until the dword at `addr` is at least `val`. */
.macro WAIT_GE addr, val
.Lwait\@:
	pause
	cmpl $\val, \addr
	jb .Lwait\@
.endm

/* Halts until vector `vec` ran `n` times: cli; test; sti; hlt, so an
 * interrupt between the test and the HLT still ends the HLT. */
.macro HALT_UNTIL vec, n
.Lhalt\@:
	cli
	cmpl $\n, AT_VEC_COUNT + 4 * \vec
	jae .Lhalted\@
	sti
	hlt
	jmp .Lhalt\@
.Lhalted\@:
	sti
.endm

/* x2APIC register `msr` = `val` (edx = `hi`). */
.macro MSR_WRITE msr, val, hi=0
	mov $\msr, %ecx
	mov $\val, %eax
	mov $\hi, %edx
	wrmsr
.endm

	.code64
	.balign 16
PAYLOAD(apic_code)

/* --- Interrupt handlers --------------------------------------------- */

/* Vectors 0x20-0xff: 16-byte stubs that push their vector. */
	.balign 16
ENTRY(apic_isr_stubs)
	.set vec, 0x20
	.rept 0xe0
	.balign 16
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

isr_common:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	mov 32(%rsp), %rsi
	lock incl AT_VEC_COUNT(,%rsi,4)
	cmp $1, %r15
	jne 1f
	lock incl AT_AP_COUNT
1:	LOG EV_INT, %esi
	movzbl AT_VEC_ACTION(%rsi), %eax
	test $ACT_LOWER_LINE, %al
	jz 2f
	push %rax
	mov $5, %al
	out %al, $AT_LINE_PORT
	pop %rax
2:	test $ACT_NO_EOI, %al
	jnz 4f
	cmpb $0, AT_X2APIC_MODE(%r15)
	je 3f
	mov $0x80b, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	jmp 4f
3:	movl $0, 0xb0(%r14)
4:	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	add $8, %rsp
	iretq

ENTRY(apic_isr_nmi)
	lock incl AT_NMI_COUNT
	LOG EV_NMI, $2
	iretq

/* #GP from an rdmsr/wrmsr (2 bytes): report, skip it. */
ENTRY(apic_isr_gp)
	LOG EV_GP, $13
	add $8, %rsp
	addq $2, (%rsp)
	iretq

done:
	out %al, $AT_DONE_PORT
	hlt
	jmp done

/* --- Timer: one-shot, then periodic (vCPU 0) ------------------------- */

ENTRY(apic_timer_main)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)            /* SVR: software-enable */
	movl $0xb, 0x3e0(%r14)             /* TDCR: divide by 1 */
	movl $0x40, 0x320(%r14)            /* LVT timer: one-shot, vector 0x40 */
	LOG EV_MARK, $1                    /* the count starts after this */
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, %r12
	movl $AT_ONESHOT_COUNT, 0x380(%r14)
	mov 0x390(%r14), %ecx
	LOG32 %ecx                         /* TMCCT right after TMICT */
	HALT_UNTIL 0x40, 1
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, %r13
	sub %r12, %r13                     /* the one-shot in TSC ticks */
	mov 0x390(%r14), %ecx
	LOG32 %ecx                         /* TMCCT after it fired: 0 */
	LOG EV_MARK, $2
	lea (%rax,%r13,2), %r12            /* twice as long, interrupts on */
1:	pause
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	cmp %r12, %rax
	jb 1b
	LOG EV_MARK, $3                    /* no second 0x40 meanwhile */
	movl $AT_PERIODIC_DIVIDE, 0x3e0(%r14)
	movl $(0x20000 | 0x41), 0x320(%r14) /* periodic, vector 0x41 */
	LOG EV_MARK, $4
	movl $AT_PERIODIC_COUNT, 0x380(%r14)
	HALT_UNTIL 0x41, AT_PERIODIC_TICKS
	mov 0x390(%r14), %ecx
	LOG32 %ecx                         /* reloaded: in (0, count] */
	movl $0, 0x380(%r14)               /* TMICT 0 stops it */
	LOG EV_MARK, $5
	jmp done

/* --- IPIs by physical and logical destination; AP start-up (vCPU 0) --- */

ENTRY(apic_ipi_main)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)
	movl $(1 << 24), 0x310(%r14)       /* destination APIC 1 */
	LOG EV_MARK, $1
	movl $0xc500, 0x300(%r14)          /* INIT, level assert */
	movl $0x8500, 0x300(%r14)          /* INIT level de-assert */
	mov $2000000, %ecx
1:	pause
	loop 1b
	LOG EV_MARK, $2                    /* INIT only so far: AP still idle */
	movl $(0x600 | AT_SIPI_VECTOR), 0x300(%r14)
	movl $(0x600 | AT_SIPI_VECTOR), 0x300(%r14)
	WAIT_GE AT_AP_READY, 1
	LOG EV_MARK, $3
	movl $(1 << 24), 0x310(%r14)
	movl $0x4050, 0x300(%r14)          /* physical 1, fixed 0x50 */
	WAIT_GE AT_AP_COUNT, 1
	movl $(0x02 << 24), 0x310(%r14)
	movl $0x4851, 0x300(%r14)          /* logical 0x02 (flat), fixed 0x51 */
	WAIT_GE AT_AP_COUNT, 2
	movl $(0x04 << 24), 0x310(%r14)
	movl $0x4852, 0x300(%r14)          /* logical 0x04: no APIC has it */
	movl $0xc4053, 0x300(%r14)         /* all excluding self, fixed 0x53 */
	WAIT_GE AT_AP_COUNT, 3
	LOG EV_MARK, $4
	jmp done

/* The AP in xAPIC mode: logical ID 0x02 in the flat model, then HLT. */
ENTRY(apic_ap_xapic)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)
	movl $0xffffffff, 0xe0(%r14)       /* DFR: flat */
	movl $(0x02 << 24), 0xd0(%r14)     /* LDR */
	movl $1, AT_AP_READY
	sti
1:	hlt
	jmp 1b

/* --- TPR and CR8 hold back a lower priority class (vCPU 0) ----------- */

ENTRY(apic_tpr_main)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)
	sti
	movl $0x50, 0x80(%r14)             /* TPR: class 5 */
	movl $0x44045, 0x300(%r14)         /* self, 0x45 (class 4): held */
	movl $0x44065, 0x300(%r14)         /* self, 0x65 (class 6): taken */
	LOG EV_MARK, $1
	movl $0, 0x80(%r14)                /* TPR 0: now 0x45 */
	LOG EV_MARK, $2
	mov $6, %eax
	mov %rax, %cr8                     /* CR8 = TPR[7:4] */
	mov 0x80(%r14), %ecx
	LOG32 %ecx                         /* TPR reads 0x60 */
	movl $0x44062, 0x300(%r14)         /* self, 0x62 (class 6): held */
	LOG EV_MARK, $3
	xor %eax, %eax
	mov %rax, %cr8
	LOG EV_MARK, $4
	LOG EV_MARK, $5
	jmp done

/* --- NMI while IF = 0 (vCPU 0) ---------------------------------------- */

ENTRY(apic_nmi_main)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)
	cli
	movl $0x44070, 0x300(%r14)         /* self, fixed 0x70: IF = 0 holds it */
	movl $0, 0x310(%r14)
	movl $0x4400, 0x300(%r14)          /* NMI to APIC 0 */
	LOG EV_MARK, $1
	sti
	nop
	LOG EV_MARK, $2
	jmp done

/* --- A level-triggered I/O APIC line and its remote IRR (vCPU 0) ------ */

ENTRY(apic_level_main)
	mov $APIC_PAGE, %r14
	movl $0x1ff, 0xf0(%r14)
	movb $ACT_NO_EOI, AT_VEC_ACTION + 0x60
	mov $IOAPIC, %ebx
	movl $(0x10 + 2 * 5 + 1), (%rbx)
	movl $0, 0x10(%rbx)                /* pin 5 -> APIC 0 */
	movl $(0x10 + 2 * 5), (%rbx)
	movl $0x8060, 0x10(%rbx)           /* level, vector 0x60, unmasked */
	mov $(AT_LINE_LEVEL | 5), %al
	out %al, $AT_LINE_PORT             /* assert pin 5 */
	HALT_UNTIL 0x60, 1                 /* in service, no EOI */
	movl $(0x10 + 2 * 5), (%rbx)
	mov 0x10(%rbx), %ecx
	LOG32 %ecx                         /* RTE: remote IRR set */
	mov 0x230(%r14), %ecx
	LOG32 %ecx                         /* IRR bits 0x60-0x7f: not again */
	mov $5, %al
	out %al, $AT_LINE_PORT             /* de-assert */
	mov $(AT_LINE_LEVEL | 5), %al
	out %al, $AT_LINE_PORT             /* assert again */
	mov 0x230(%r14), %ecx
	LOG32 %ecx                         /* remote IRR still holds it */
	LOG EV_MARK, $1
	movb $ACT_LOWER_LINE, AT_VEC_ACTION + 0x60
	movl $0, 0xb0(%r14)                /* EOI: line high, so again */
	HALT_UNTIL 0x60, 2
	LOG EV_MARK, $2
	movl $(0x10 + 2 * 5), (%rbx)
	mov 0x10(%rbx), %ecx
	LOG32 %ecx                         /* remote IRR clear */
	jmp done

/* --- x2APIC: IPIs by MSR, SELF IPI, refused MSRs (vCPU 0) ------------- */

ENTRY(apic_x2apic_main)
	mov $0x1b, %ecx
	rdmsr
	or $0x400, %eax                    /* IA32_APIC_BASE.EXTD */
	wrmsr
	movb $1, AT_X2APIC_MODE
	MSR_WRITE 0x80f, 0x1ff                 /* SVR */
	MSR_WRITE 0x830, 0xc500, 1             /* INIT to APIC 1 */
	MSR_WRITE 0x830, (0x600 | AT_SIPI_VECTOR), 1
	MSR_WRITE 0x830, (0x600 | AT_SIPI_VECTOR), 1
	WAIT_GE AT_AP_READY, 1
	MSR_WRITE 0x830, 0x4057, 1             /* physical 1, fixed 0x57 */
	WAIT_GE AT_AP_COUNT, 1
	MSR_WRITE 0x830, 0x4858, 2             /* logical: cluster 0, bit 1 */
	WAIT_GE AT_AP_COUNT, 2
	sti
	MSR_WRITE 0x83f, 0x59                  /* SELF IPI */
	HALT_UNTIL 0x59, 1
	mov $0x802, %ecx
	rdmsr
	mov %eax, %esi
	LOG32 %esi                         /* x2APIC ID */
	MSR_WRITE 0x4b564d02, 1                /* async PF: KVM refuses it -> #GP */
	mov $0x809, %ecx
	rdmsr                              /* no APR in x2APIC mode -> #GP */
	LOG EV_MARK, $1
	jmp done

ENTRY(apic_ap_x2apic)
	mov $0x1b, %ecx
	rdmsr
	or $0x400, %eax
	wrmsr
	movb $1, AT_X2APIC_MODE + 1
	MSR_WRITE 0x80f, 0x1ff
	mov $0x80d, %ecx
	rdmsr
	mov %eax, %esi
	LOG32 %esi                         /* LDR: cluster 0, bit 1 */
	movl $1, AT_AP_READY
	sti
1:	hlt
	jmp 1b

END(apic_code)

/* --- The AP's trampoline at the SIPI page ------------------------------ */

	.code16
PAYLOAD(apic_trampoline)
	cli
	mov %cs, %bx
	call 1f
ENTRY(apic_trampoline_probe)
1:	pop %si                            /* the IP this instruction ran at */
	mov $(AT_DATA_PORT + 1), %dx
	movzwl %bx, %ebx
	mov $(EV_SIPI_CS << 16), %eax
	or %ebx, %eax
	out %eax, %dx
	movzwl %si, %esi
	mov $(EV_SIPI_IP << 16), %eax
	or %esi, %eax
	out %eax, %dx
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %ss
	mov $0x7000, %sp
	lgdtl AT_GDTR
	mov %cr4, %eax
	or $0x20, %eax                     /* PAE */
	mov %eax, %cr4
	mov $AT_PML4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax                    /* EFER.LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax               /* PG | PE */
	mov %eax, %cr0
	ljmpl $0x10, $(AT_TRAMPOLINE + (2f - apic_trampoline_start))
	.code64
2:	mov $0x18, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $1, %r15
	mov $AT_AP_STACK, %rsp
	lidt AT_IDTR
	jmp *AT_AP_ENTRY
END(apic_trampoline)

	.section .note.GNU-stack, "", @progbits
