/*
 * coro_ctx_switch(from, to): saves the callee-saved state of the running
 * context on its own stack, stores the stack pointer in from->sp, loads
 * to->sp and pops the state saved there.  Caller-saved registers need no
 * saving: the C caller already assumes a call clobbers them.
 *
 * coro_ctx_trampoline: where a new context "returns" to on its first
 * switch; coro_ctx_init() leaves fn and arg in two callee-saved registers.
 */
#if defined(__x86_64__)

	.text
	.globl	coro_ctx_switch
	.hidden	coro_ctx_switch
	.type	coro_ctx_switch, @function
	.p2align 4
coro_ctx_switch:			/* rdi = from, rsi = to */
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)			/* SSE rounding/exception control */
	fnstcw	4(%rsp)			/* x87 control word */
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	coro_ctx_switch, .-coro_ctx_switch

	.globl	coro_ctx_trampoline
	.hidden	coro_ctx_trampoline
	.type	coro_ctx_trampoline, @function
	.p2align 4
coro_ctx_trampoline:			/* r12 = fn, r13 = arg */
	.cfi_startproc
	.cfi_undefined rip		/* outermost frame for debuggers */
	movq	%r13, %rdi
	callq	*%r12
	ud2				/* fn never returns */
	.cfi_endproc
	.size	coro_ctx_trampoline, .-coro_ctx_trampoline

#elif defined(__aarch64__)

	.text
	.globl	coro_ctx_switch
	.hidden	coro_ctx_switch
	.type	coro_ctx_switch, %function
	.p2align 4
coro_ctx_switch:			/* x0 = from, x1 = to */
	sub	sp, sp, #176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	ret
	.size	coro_ctx_switch, .-coro_ctx_switch

	.globl	coro_ctx_trampoline
	.hidden	coro_ctx_trampoline
	.type	coro_ctx_trampoline, %function
	.p2align 4
coro_ctx_trampoline:			/* x19 = fn, x20 = arg */
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x20
	blr	x19
	brk	#0
	.cfi_endproc
	.size	coro_ctx_trampoline, .-coro_ctx_trampoline

#else
#error "no coroutine switch for this CPU: configure --with-ucontext"
#endif

	.section .note.GNU-stack, "", %progbits
