/* 64-bit "kernels" for vmm_kvm_test: each is the protected-mode part of a
 * fake bzImage (entry at +0x200), exercising one VMM path without Linux. */
#define KERNEL(name) .globl name##_start, name##_end; name##_start: .fill 0x200, 1, 0x90
#define END(name) name##_end:

/* "up\n" on COM1: tells the test the kernel is running. */
.macro PRINT_UP
	mov $0x3f8, %dx
	mov $'u', %al
	out %al, %dx
	mov $'p', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
.endm

/* Resets through the i8042 (0xfe to port 0x64), which ends the VMM with
 * status 0. */
.macro RESET
	mov $0x64, %dx
	mov $0xfe, %al
	out %al, %dx
3:	hlt
	jmp 3b
.endm

/* Prints the NUL-terminated string at \msg on COM1, then resets through
 * the i8042 (0xfe to port 0x64). */
.macro PRINT_AND_RESET msg
	mov $0x3f8, %dx
	lea \msg(%rip), %rsi
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	RESET
.endm

	.section .rodata, "a"
	.code64

/* Prints "hello\n" on COM1, then resets through the i8042 (0xfe to 0x64). */
KERNEL(vmm_kernel_hello_reset)
	PRINT_AND_RESET msg_hello
msg_hello:
	.asciz "hello\n"
END(vmm_kernel_hello_reset)

/* ACPI S5: (SLP_TYP 5 << 2) | SLP_EN written to sleep control at 0x600. */
KERNEL(vmm_kernel_poweroff)
	mov $0x600, %dx
	mov $0x34, %al
	out %al, %dx
1:	hlt
	jmp 1b
END(vmm_kernel_poweroff)

/* Linux's panic banner on the console, then a reset. */
KERNEL(vmm_kernel_panic)
	PRINT_AND_RESET msg_panic
msg_panic:
	.asciz "Kernel panic - not syncing: Attempted to kill init!\n"
END(vmm_kernel_panic)

/* Echoes three bytes from COM1's receiver (polling LSR.DR), then "!\n",
 * then resets: stdin reaches the guest. */
KERNEL(vmm_kernel_echo)
	mov $3, %ecx
1:	mov $0x3fd, %dx
2:	in %dx, %al
	test $1, %al
	jz 2b
	mov $0x3f8, %dx
	in %dx, %al
	out %al, %dx
	loop 1b
	mov $'!', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	RESET
END(vmm_kernel_echo)

/* Touches one byte in every 2 MiB of [32 MiB, 510 MiB) (the guest RAM of
 * the test config above the kernel, below the initrd: both nodes), reports
 * a checksum of what it read (zero-filled pages: 0), then resets. */
KERNEL(vmm_kernel_touch)
	xor %rbx, %rbx
	mov $0x2000000, %rax
1:	cmp $0x1fe00000, %rax
	jae 2f
	movzbl (%rax), %ecx
	add %rcx, %rbx
	movb $1, (%rax)
	add $0x200000, %rax
	jmp 1b
2:	mov $0x3f8, %dx
	mov %bl, %al
	add $'0', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	RESET
END(vmm_kernel_touch)

/* Prints "up\n", then spins with interrupts off until the VMM stops it. */
KERNEL(vmm_kernel_spin)
	PRINT_UP
1:	jmp 1b
END(vmm_kernel_spin)

/* Reads node 1's memory of a 2 x 256 MiB cluster, GPA [256 MiB, 512 MiB),
 * one byte a page, forever: a 17-page stride modulo 256 MiB visits every
 * page once a pass, in an order no read-ahead predicts, so on node 0 each
 * read of the first pass is a remote fault. Prints "up\n" after the first
 * read: the test then knows a remote fault has been resolved. */
KERNEL(vmm_kernel_walk_remote)
	movzbl 0x10000000, %edx
	PRINT_UP
	xor %rcx, %rcx
1:	lea 0x10000000(%rcx), %rax
	movzbl (%rax), %edx
	add $0x11000, %rcx
	and $0x0fffffff, %rcx
	jmp 1b
END(vmm_kernel_walk_remote)

/* Prints "up\n", then jumps to GPA 0xd0000000 (identity-mapped, inside the
 * 3 GiB hole: no memory slot). KVM cannot fetch the instruction there and
 * stops the vCPU with KVM_EXIT_INTERNAL_ERROR (emulation failure). */
KERNEL(vmm_kernel_jump_unbacked)
	PRINT_UP
	mov $0xd0000000, %eax
	jmp *%rax
END(vmm_kernel_jump_unbacked)

	.section .note.GNU-stack, "", @progbits
