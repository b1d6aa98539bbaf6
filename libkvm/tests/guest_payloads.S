/* Guest programs for kvm_guest_test, in the spirit of kvmtool's tests/:
 * tiny position-independent payloads kept in .rodata, copied into guest
 * memory by the test and run on real KVM. Port 0xe9 is the test's data
 * port (reads return 0x41), 0xf4 its "done" port; 0xd0000 is unbacked
 * (MMIO) in the real-mode tests, 0xfeb00000 in the long-mode one. */

#define PAYLOAD(name) .globl name##_start, name##_end; name##_start:
#define END(name) name##_end:

	.section .rodata, "a"

	.code16
/* IO exits: out, in, 16-bit out, then HLT. */
PAYLOAD(guest_rm_io)
	mov $0x42, %al
	out %al, $0xe9
	in $0xe9, %al
	inc %al
	out %al, $0xe9
	mov $0x1234, %ax
	mov $0xe9, %dx
	out %ax, %dx
	hlt
END(guest_rm_io)

/* MMIO exits: a 1-byte write at 0xd0010, a 2-byte read at 0xd0020 whose
 * value goes out on the data port. */
PAYLOAD(guest_rm_mmio)
	mov $0xd000, %ax
	mov %ax, %ds
	movb $0x5a, 0x10
	movw 0x20, %ax
	mov $0xe9, %dx
	out %ax, %dx
	hlt
END(guest_rm_mmio)

/* Faults on userfaultfd-registered memory at 0x10000: read page 0 (the
 * handler fills it with 0xa5), write then read page 2. */
PAYLOAD(guest_rm_uffd)
	mov $0x1000, %ax
	mov %ax, %ds
	movb 0x123, %al
	out %al, $0xe9
	movb $0x77, 0x2000
	movb 0x2000, %al
	out %al, $0xe9
	hlt
END(guest_rm_uffd)

/* CPUID as the guest sees it: leaf 1 EBX, leaf 0xb.0 EDX, 0x8000001e
 * EAX and ECX, each out on the data port as 32 bits. */
PAYLOAD(guest_rm_cpuid)
	mov $1, %eax
	cpuid
	mov %ebx, %eax
	mov $0xe9, %dx
	out %eax, %dx
	mov $0xb, %eax
	xor %ecx, %ecx
	cpuid
	mov %edx, %eax
	mov $0xe9, %dx
	out %eax, %dx
	mov $0x8000001e, %eax
	xor %ecx, %ecx
	cpuid
	mov $0xe9, %dx
	out %eax, %dx
	mov %ecx, %eax
	out %eax, %dx
	hlt
END(guest_rm_cpuid)

/* Runs until stopped: one out (al = vCPU index from the test), then spins
 * incrementing the 16-bit counter at 0x600 + 2 * index. A counter that moves
 * proves the vCPU is back in guest mode, where only a kick can stop it. */
PAYLOAD(guest_rm_spin)
	out %al, $0xe9
	xor %bx, %bx
	mov %al, %bl
	shl $1, %bx
1:	incw 0x600(%bx)
	jmp 1b
END(guest_rm_spin)

/* Provokes KVM_EXIT_INTERNAL_ERROR (emulation): reports its index like
 * guest_rm_spin, waits until vCPU 1's spin counter at 0x602 moves (so that
 * vCPU is in guest mode, where only a kick stops it), then jumps to
 * e000:0000. GPA 0xe0000 has no memory slot: the fetch faults to KVM as
 * MMIO, and KVM cannot emulate an instruction it cannot fetch. */
PAYLOAD(guest_rm_fetch_unbacked)
	out %al, $0xe9
1:	cmpw $0, 0x602
	je 1b
	ljmp $0xe000, $0
END(guest_rm_fetch_unbacked)

	.code64
/* Long mode at CPL 0: one out on the data port, then hlt. The control case
 * of the FAIL_ENTRY test (the same state with a valid CS gets here). */
PAYLOAD(guest_lm_out_hlt)
	mov $0x64, %al
	out %al, $0xe9
	hlt
END(guest_lm_out_hlt)

/* A fake bzImage's protected-mode kernel: the 64-bit entry is at +0x200.
 * Reports what the boot protocol handed it, touches RAM just below the
 * 3 GiB hole (identity map past 2 GiB) and MMIO inside it, then signals
 * done on port 0xf4. */
PAYLOAD(guest_lm_kernel)
	.fill 0x200, 1, 0x90
	mov $0xe9, %dx
	mov %cs, %ax
	out %ax, %dx
	movzbl 0x1e8(%rsi), %eax       /* boot_params.e820_entries */
	out %al, %dx
	mov 0x228(%rsi), %eax          /* hdr.cmd_line_ptr */
	out %eax, %dx
	mov %eax, %ebx
	movzbl (%rbx), %eax            /* first command line byte */
	out %al, %dx
	mov 0x218(%rsi), %eax          /* hdr.ramdisk_image */
	out %eax, %dx
	movabs $0xbffff000, %rbx
	movl $0xc0ffee, (%rbx)
	mov (%rbx), %eax
	out %eax, %dx
	movabs $0xfeb00000, %rbx
	movl $0xdeadbeef, (%rbx)
	mov $0xf4, %dx
	out %al, %dx
	hlt
END(guest_lm_kernel)

/* A fake kernel that executes ud2 with the boot IDT (limit 0): #UD, #GP,
 * #DF, triple fault (KVM_EXIT_SHUTDOWN). Real mode cannot do this reliably:
 * Intel's unrestricted guest ignores the IVT limit. */
PAYLOAD(guest_lm_triple_fault)
	.fill 0x200, 1, 0x90
	ud2
	hlt
END(guest_lm_triple_fault)

	.section .note.GNU-stack, "", @progbits
