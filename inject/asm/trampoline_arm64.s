// lptrace's arm64 call trampoline. Source of the bytes in
// ../trampoline_gen_arm64.go; regenerate with ./gen.sh arm64 after any change.
//
// Entered with sp = B, the base of a context block that lptrace wrote on the
// thread's own stack, pc here, and every other register still holding the
// thread's values. It saves the FP/SIMD registers, runs the calls listed in
// the block, puts the FP/SIMD registers back, raises a signal at itself so
// that lptrace can collect the results, then restores the thread with
// rt_sigreturn from a signal frame in the block. lptrace wrote the thread's
// registers into that frame (x0-x30, sp, pc, pstate); the trampoline adds
// the FP/SIMD registers, the signal mask and the alternate signal stack.
// rt_sigreturn is the one way back on arm64 that sets every general
// register, sp, pc and the flags at once: a branch needs a register for its
// target. If lptrace vanished, the signal is one that is ignored by default
// and the thread finishes the trampoline by itself.
//
// Block layout (offsets from B):
//   0x08 ncalls        0x10 done flag     0x18 index of the aborting call
//   0x20 frame offset (struct rt_sigframe, 16-byte aligned)
//   0x30 signal
//   0x80 calls, 88 bytes each, as on x86-64 (see trampoline_amd64.s)
// rt_sigframe (offsets from its start F): 128 siginfo, then ucontext:
//   144 uc_stack  168 uc_sigmask  312 regs[31]  560 sp  568 pc  576 pstate
//   592 fpsimd_context: magic, size, 600 fpsr, 604 fpcr, 608 vregs[32]
//   1120 the terminating record (zero)

	.arch armv8-a
	.text
	.globl tramp
tramp:
	hint	#38                     // bti jc: a landing pad, should the pages be guarded
	mov	x19, sp
	ldr	x20, [x19, #0x20]
	add	x20, x19, x20
	add	x9, x20, #608
	stp	q0, q1, [x9, #0]
	stp	q2, q3, [x9, #32]
	stp	q4, q5, [x9, #64]
	stp	q6, q7, [x9, #96]
	stp	q8, q9, [x9, #128]
	stp	q10, q11, [x9, #160]
	stp	q12, q13, [x9, #192]
	stp	q14, q15, [x9, #224]
	stp	q16, q17, [x9, #256]
	stp	q18, q19, [x9, #288]
	stp	q20, q21, [x9, #320]
	stp	q22, q23, [x9, #352]
	stp	q24, q25, [x9, #384]
	stp	q26, q27, [x9, #416]
	stp	q28, q29, [x9, #448]
	stp	q30, q31, [x9, #480]
	mrs	x10, fpsr
	str	w10, [x20, #600]
	mrs	x10, fpcr
	str	w10, [x20, #604]
	add	x21, x19, #0x80         // the current call
	ldr	x22, [x19, #0x08]       // ncalls
	mov	x23, #0                 // its index
	mov	x24, #0                 // aborted?
next_call:
	cmp	x23, x22
	b.hs	finish
	ldr	x9, [x21, #64]
	cbz	x24, not_aborted
	tst	x9, #48                 // after an abort: only "always" (16) and "cleanup" (32) calls
	b.eq	skip
	b	resolve_args
not_aborted:
	tst	x9, #32                 // "cleanup" calls run only after an abort
	b.ne	skip
resolve_args:
	mov	x10, #0
	add	x11, x21, #56
	add	x14, x21, #8
	mov	x13, #88
arg_loop:
	ldrb	w12, [x11, x10]
	cbz	w12, arg_next
	sub	x12, x12, #1
	mul	x12, x12, x13
	add	x12, x12, #0x80 + 72
	ldr	x12, [x19, x12]
	str	x12, [x14, x10, lsl #3]
arg_next:
	add	x10, x10, #1
	cmp	x10, #6
	b.lo	arg_loop
	ldr	x9, [x21]
	cmp	x9, #3
	b.hi	do_call
	b.eq	do_sub
	cmp	x9, #2
	b.eq	do_add
	cmp	x9, #1
	b.eq	do_syscall
	ldp	x0, x1, [x21, #8]       // memcpy(a0, a1, a2)
	ldr	x2, [x21, #24]
1:	cbz	x2, 2f
	ldrb	w3, [x1], #1
	strb	w3, [x0], #1
	sub	x2, x2, #1
	b	1b
2:	mov	x0, #0
	b	called
do_sub:
	ldp	x0, x1, [x21, #8]
	sub	x0, x0, x1
	b	called
do_add:
	ldp	x0, x1, [x21, #8]
	add	x0, x0, x1
	ldr	w2, [x21, #24]
	ldr	w3, [x0]
	add	w3, w3, w2
	str	w3, [x0]
	sxtw	x0, w3
	b	called
do_syscall:
	ldp	x0, x1, [x21, #8]
	ldp	x2, x3, [x21, #24]
	ldp	x4, x5, [x21, #40]
	ldr	x8, [x21, #80]
	svc	#0
	b	called
do_call:
	ldp	x0, x1, [x21, #8]
	ldp	x2, x3, [x21, #24]
	ldp	x4, x5, [x21, #40]
	ldr	x16, [x21]
	blr	x16
called:
	str	x0, [x21, #72]
	cbnz	x24, skip
	ldr	x9, [x21, #64]
	tbz	x9, #0, 2f              // abort if zero
	cbz	x0, abort
2:	tbz	x9, #1, 3f              // abort if non-zero
	cbnz	x0, abort
3:	tbz	x9, #2, 4f              // abort on -1 or -errno
	cmn	x0, #4095
	b.hs	abort
4:	tbz	x9, #3, skip            // abort if non-zero and equal to *aux
	cbz	x0, skip
	ldr	x10, [x21, #80]
	ldr	x10, [x10]
	cmp	x0, x10
	b.ne	skip
abort:
	str	x23, [x19, #0x18]
	mov	x24, #1
skip:
	add	x21, x21, #88
	add	x23, x23, #1
	b	next_call
finish:
	add	x9, x20, #608
	ldp	q0, q1, [x9, #0]
	ldp	q2, q3, [x9, #32]
	ldp	q4, q5, [x9, #64]
	ldp	q6, q7, [x9, #96]
	ldp	q8, q9, [x9, #128]
	ldp	q10, q11, [x9, #160]
	ldp	q12, q13, [x9, #192]
	ldp	q14, q15, [x9, #224]
	ldp	q16, q17, [x9, #256]
	ldp	q18, q19, [x9, #288]
	ldp	q20, q21, [x9, #320]
	ldp	q22, q23, [x9, #352]
	ldp	q24, q25, [x9, #384]
	ldp	q26, q27, [x9, #416]
	ldp	q28, q29, [x9, #448]
	ldp	q30, q31, [x9, #480]
	ldr	w10, [x20, #600]
	msr	fpsr, x10
	ldr	w10, [x20, #604]
	msr	fpcr, x10
	mov	x10, #1
	str	x10, [x19, #0x10]
	mov	x8, #172                // getpid, gettid: the IDs in the
	svc	#0                      // target's own PID namespace
	mov	x25, x0
	mov	x8, #178
	svc	#0
	mov	x1, x0
	mov	x0, x25
	ldr	x2, [x19, #0x30]
	mov	x8, #131                // tgkill(tgid, tid, sig)
	svc	#0
	.globl stopped
stopped:
	mov	x0, #0                  // rt_sigprocmask(SIG_BLOCK, NULL, &uc_sigmask, 8):
	mov	x1, #0                  // the mask stays as it is now
	add	x2, x20, #168
	mov	x3, #8
	mov	x8, #135
	svc	#0
	mov	x0, #0                  // sigaltstack(NULL, &uc_stack): so does the
	add	x1, x20, #144           // alternate stack
	mov	x8, #132
	svc	#0
	mov	sp, x20
	mov	x8, #139                // rt_sigreturn
	svc	#0
	.globl tramp_end
tramp_end:

// Pending-call entry, copied into an mmap'd buffer at offset 0: called by the
// interpreter's eval loop with x0 = the buffer. Same work as pentry in
// trampoline_amd64.s, with the same data at the same offsets: [buf+0x180]
// the code string, 0x188 PyRun_SimpleString, 0x190 the buffer's size, 0x198
// munmap, 0x1a0 the signals to block, 0x1a8 PyThreadState_Get, 0x1b0
// PyThreadState_EnterTracing, 0x1b8 PyThreadState_LeaveTracing, 0x1c0 the
// tracing counter's offset, 0x1c8 Py_GetRecursionLimit, 0x1d0
// Py_SetRecursionLimit, 0x1d8 the headroom, 0x1e0 the depth counter's
// offset. It tail-calls munmap(buf, size) through x16 (a branch that a
// guarded function's `bti c` accepts), so nothing returns into the buffer.
	.globl pentry
pentry:
	stp	x29, x30, [sp, #-64]!   // [sp+32]: the old mask; [sp+40]: blocked?; [sp+48]: tstate
	mov	x29, sp
	stp	x19, x20, [sp, #16]
	mov	x19, x0
	mov	x0, #0                  // rt_sigprocmask(SIG_BLOCK, set, &old, 8)
	add	x1, x19, #0x1a0
	add	x2, sp, #32
	mov	x3, #8
	mov	x8, #135
	svc	#0
	str	x0, [sp, #40]           // 0 once blocked
	str	xzr, [sp, #48]
	ldr	x9, [x19, #0x1a8]
	cbz	x9, 3f
	blr	x9
	str	x0, [sp, #48]
	cbz	x0, 3f
	ldr	x9, [x19, #0x1b0]
	cbz	x9, 2f
	blr	x9
	b	3f
2:	ldr	x10, [x19, #0x1c0]
	ldr	w11, [x0, x10]
	add	w11, w11, #1
	str	w11, [x0, x10]
3:	ldr	x10, [x19, #0x1e0]
	cbz	x10, 6f
	ldr	x0, [sp, #48]
	cbz	x0, 7f
	ldr	w11, [x0, x10]
	ldr	w12, [x19, #0x1d8]
	sub	w11, w11, w12
	str	w11, [x0, x10]
	b	7f
6:	ldr	x9, [x19, #0x1c8]
	blr	x9
	ldr	w12, [x19, #0x1d8]
	add	w0, w0, w12
	ldr	x9, [x19, #0x1d0]
	blr	x9
7:	ldr	x0, [x19, #0x180]
	ldr	x9, [x19, #0x188]
	blr	x9
	ldr	x10, [x19, #0x1e0]
	cbz	x10, 8f
	ldr	x0, [sp, #48]
	cbz	x0, 9f
	ldr	w11, [x0, x10]
	ldr	w12, [x19, #0x1d8]
	add	w11, w11, w12
	str	w11, [x0, x10]
	b	9f
8:	ldr	x9, [x19, #0x1c8]
	blr	x9
	ldr	w12, [x19, #0x1d8]
	sub	w0, w0, w12
	ldr	x9, [x19, #0x1d0]
	blr	x9
9:	ldr	x0, [sp, #48]
	cbz	x0, 5f
	ldr	x9, [x19, #0x1b8]
	cbz	x9, 4f
	blr	x9
	b	5f
4:	ldr	x10, [x19, #0x1c0]
	ldr	w11, [x0, x10]
	sub	w11, w11, #1
	str	w11, [x0, x10]
5:	ldr	x9, [sp, #40]
	cbnz	x9, 1f
	mov	x0, #2                  // rt_sigprocmask(SIG_SETMASK, &old, NULL, 8)
	add	x1, sp, #32
	mov	x2, #0
	mov	x3, #8
	mov	x8, #135
	svc	#0
1:	mov	x0, x19
	ldr	x1, [x19, #0x190]
	ldr	x16, [x19, #0x198]
	ldp	x19, x20, [sp, #16]
	ldp	x29, x30, [sp], #64
	br	x16
	.org	pentry + 0x180          // the data (an error here: the code outgrew it)
	.globl pentry_end
pentry_end:

// Stack probe (see trampoline_amd64.s): touches the stack 20 KiB below sp
// without a scratch register (sp itself moves down and back), and branches
// to the resume address: lptrace writes the branch, which reaches 128 MiB
// either way (farther, no probe).
	.globl probe
probe:
	sub	sp, sp, #0x5, lsl #12
	strb	wzr, [sp]
	add	sp, sp, #0x5, lsl #12
	b	.
	.globl probe_end
probe_end:
