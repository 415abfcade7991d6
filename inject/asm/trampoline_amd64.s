# lptrace's x86_64 call trampoline. Source of the bytes in
# ../trampoline_gen_amd64.go; regenerate with ./gen.sh after any change.
#
# Entered with rsp = B, the base of a context block that lptrace wrote on the
# thread's own stack; every other register still holds the thread's values.
# It saves the FP/vector state, runs the calls listed in the block, restores
# the FP/vector state, raises a signal at itself so that lptrace can collect
# the results, then restores the general registers and flags saved in the
# block and returns to the interrupted instruction with `ret 256`, which sets
# rip and rsp in one instruction. If lptrace vanished, the signal is one that
# is ignored by default and the thread finishes the trampoline by itself.
#
# Block layout (offsets from B):
#   0x08 ncalls        0x10 done flag     0x18 index of the aborting call
#   0x20 xsave offset  0x28 saved-registers offset
#   0x30 signal
#   0x80 calls, 88 bytes each:
#        +0 fn (0: memcpy(a0, a1, a2); 1: raw syscall number aux;
#              2: the int32 at a0 + a1 += a2, result its new value;
#              3: result a0 - a1; else address)
#        +8 a0..a5   +56 argsrc[6] (k+1: take the result of call k)
#        +64 flags (1 abort if zero, 2 abort if non-zero, 4 abort on -errno,
#            8 abort if non-zero and equal to *aux, 16 always, 32 only after an abort)
#        +72 result     +80 aux
# Saved registers, ascending: rax rbx rcx rdx rsi rdi rbp r8-r15 rflags, then
# the resume rip at (original rsp - 264).

	.intel_syntax noprefix
	.text
	.globl tramp
tramp:
	cld
	mov rbx, rsp
	mov r12, [rbx+0x20]
	add r12, rbx
	mov eax, -1
	mov edx, -1
	xsave64 [r12]
	lea r13, [rbx+0x80]
	mov r14, [rbx+0x08]
	xor r15d, r15d
	xor ebp, ebp
next_call:
	cmp r15, r14
	jae finish
	mov rax, [r13+64]
	test ebp, ebp
	jz not_aborted
	test eax, 48                     # after an abort: only "always" (16) and "cleanup" (32) calls
	jz skip
	jmp resolve_args
not_aborted:
	test eax, 32                     # "cleanup" calls run only after an abort
	jnz skip
resolve_args:
	xor ecx, ecx
arg_loop:
	movzx eax, byte ptr [r13+56+rcx]
	test eax, eax
	jz arg_next
	dec eax
	imul rax, rax, 88
	mov rax, [rbx+0x80+rax+72]
	mov [r13+8+rcx*8], rax
arg_next:
	inc ecx
	cmp ecx, 6
	jb arg_loop
	mov rax, [r13]
	cmp rax, 3
	ja do_call
	je do_sub
	cmp rax, 2
	je do_add
	cmp rax, 1
	je do_syscall
	mov rdi, [r13+8]
	mov rsi, [r13+16]
	mov rcx, [r13+24]
	rep movsb
	xor eax, eax
	jmp called
do_sub:
	mov rax, [r13+8]
	sub rax, [r13+16]
	jmp called
do_add:
	mov rdi, [r13+8]
	add rdi, [r13+16]
	mov eax, [r13+24]
	add [rdi], eax
	movsxd rax, dword ptr [rdi]
	jmp called
do_syscall:
	mov rdi, [r13+8]
	mov rsi, [r13+16]
	mov rdx, [r13+24]
	mov r10, [r13+32]
	mov r8, [r13+40]
	mov r9, [r13+48]
	mov rax, [r13+80]
	syscall
	jmp called
do_call:
	mov rdi, [r13+8]
	mov rsi, [r13+16]
	mov rdx, [r13+24]
	mov rcx, [r13+32]
	mov r8, [r13+40]
	mov r9, [r13+48]
	xor eax, eax
	call qword ptr [r13]
called:
	mov [r13+72], rax
	test ebp, ebp
	jnz skip
	mov rcx, [r13+64]
	test cl, 1                       # abort if zero
	jz 2f
	test rax, rax
	jz abort
2:	test cl, 2                       # abort if non-zero
	jz 3f
	test rax, rax
	jnz abort
3:	test cl, 4                       # abort on -1 or -errno
	jz 4f
	cmp rax, -4095
	jae abort
4:	test cl, 8                       # abort if non-zero and equal to *aux
	jz skip
	test rax, rax
	jz skip
	mov rdx, [r13+80]
	cmp rax, [rdx]
	jne skip
abort:
	mov [rbx+0x18], r15
	mov ebp, 1
skip:
	add r13, 88
	inc r15
	jmp next_call
finish:
	mov eax, -1
	mov edx, -1
	xrstor64 [r12]
	mov qword ptr [rbx+0x10], 1
	mov eax, 39                      # getpid, gettid: the IDs in the
	syscall                          # target's own PID namespace
	mov r12, rax
	mov eax, 186
	syscall
	mov rsi, rax
	mov rdi, r12
	mov rdx, [rbx+0x30]
	mov eax, 234                     # tgkill(tgid, tid, sig)
	syscall
	.globl stopped
stopped:
	mov rax, [rbx+0x28]
	add rax, rbx
	mov rsp, rax
	pop rax
	pop rbx
	pop rcx
	pop rdx
	pop rsi
	pop rdi
	pop rbp
	pop r8
	pop r9
	pop r10
	pop r11
	pop r12
	pop r13
	pop r14
	pop r15
	popfq
	ret 256
	.globl tramp_end
tramp_end:

# Pending-call entry, copied into an mmap'd buffer at offset 0: called by the
# interpreter's eval loop with rdi = the buffer. It blocks the program's
# asynchronous signals in this thread ([buf+0x1a0], a kernel sigset), runs the
# code string at [buf+0x180] with the function at [buf+0x188]
# (PyRun_SimpleString), puts the signal mask back, then tail-calls
# munmap(buf, [buf+0x190]) through [buf+0x198], so that the buffer is gone
# without a return into it. It always returns 0: a pending call that returns
# -1 would raise an error in the program. With the signals blocked, a Ctrl-C
# that arrives meanwhile waits in the kernel and reaches the program once the
# mask is back, instead of raising inside lptrace's code (where, before the
# code's own try, PyRun_SimpleString would print it and the program lose it).
#
# Around the code, the thread is marked as tracing (tstate->tracing + 1), so
# that the program's trace and profile functions and sys.monitoring tools
# never see it: tstate from [buf+0x1a8] (PyGILState_GetThisThreadState; 0:
# no marking), then [buf+0x1b0](tstate) (PyThreadState_EnterTracing, 3.11+)
# or, when that is 0, the int32 at tstate + [buf+0x1c0] incremented;
# afterwards [buf+0x1b8](tstate) (PyThreadState_LeaveTracing) or the int32
# decremented.
#
# Around the code too, the thread gets [buf+0x1d8] frames of headroom:
# the code runs at the program's depth, where a program near its limit left
# it no frame (PyRun_SimpleString's own compilation failed). Where
# [buf+0x1e0] is not 0 (before 3.11), the thread's own depth counter (the
# int32 at tstate + [buf+0x1e0]) goes down by as much and back up
# afterwards; else the recursion limit goes up ([buf+0x1c8]
# Py_GetRecursionLimit, [buf+0x1d0] Py_SetRecursionLimit) and back down.
	.globl pentry
pentry:
	push rbx
	sub rsp, 32                  # [rsp]: the old mask; [rsp+8]: blocked?; [rsp+16]: tstate
	mov rbx, rdi
	mov eax, 14                  # rt_sigprocmask(SIG_BLOCK, set, &old, 8)
	xor edi, edi
	lea rsi, [rbx+0x1a0]
	mov rdx, rsp
	mov r10d, 8
	syscall
	mov [rsp+8], rax             # 0 once blocked
	mov qword ptr [rsp+16], 0
	mov rax, [rbx+0x1a8]
	test rax, rax
	jz 3f
	call rax
	mov [rsp+16], rax
	test rax, rax
	jz 3f
	mov rdi, rax
	mov rax, [rbx+0x1b0]
	test rax, rax
	jz 2f
	call rax
	jmp 3f
2:
	mov rcx, [rbx+0x1c0]
	add dword ptr [rdi+rcx], 1
3:
	mov rcx, [rbx+0x1e0]
	test rcx, rcx
	jz 6f
	mov rdi, [rsp+16]
	test rdi, rdi
	jz 7f
	mov eax, [rbx+0x1d8]
	sub [rdi+rcx], eax
	jmp 7f
6:
	call qword ptr [rbx+0x1c8]
	add eax, [rbx+0x1d8]
	mov edi, eax
	call qword ptr [rbx+0x1d0]
7:
	mov rdi, [rbx+0x180]
	call qword ptr [rbx+0x188]
	mov rcx, [rbx+0x1e0]
	test rcx, rcx
	jz 8f
	mov rdi, [rsp+16]
	test rdi, rdi
	jz 9f
	mov eax, [rbx+0x1d8]
	add [rdi+rcx], eax
	jmp 9f
8:
	call qword ptr [rbx+0x1c8]
	sub eax, [rbx+0x1d8]
	mov edi, eax
	call qword ptr [rbx+0x1d0]
9:
	mov rdi, [rsp+16]
	test rdi, rdi
	jz 5f
	mov rax, [rbx+0x1b8]
	test rax, rax
	jz 4f
	call rax
	jmp 5f
4:
	mov rcx, [rbx+0x1c0]
	sub dword ptr [rdi+rcx], 1
5:
	cmp qword ptr [rsp+8], 0
	jne 1f
	mov eax, 14                  # rt_sigprocmask(SIG_SETMASK, &old, NULL, 8)
	mov edi, 2
	mov rsi, rsp
	xor edx, edx
	mov r10d, 8
	syscall
1:
	mov rdi, rbx
	mov rsi, [rbx+0x190]
	mov rax, [rbx+0x198]
	add rsp, 32
	pop rbx
	jmp rax
	.globl pentry_end
pentry_end:

# Stack probe, copied into other code padding on its own: the main thread's
# stack grows only when the thread itself touches memory below it (the
# kernel does not grow it for lptrace's writes), and a thread parked at the
# deepest point its recursion ever reached has no mapped room below its
# stack pointer for the context block. Entered with every register as the
# thread will resume (the system call restart done), it touches the stack
# 20 KiB below rsp (memory no one uses: below the red zone), which changes
# no register and no flag, and jumps to the resume address in its last 8
# bytes. lptrace single-steps it and puts the thread's registers back; if
# lptrace dies meanwhile, the thread simply goes on.
	.globl probe
probe:
	mov byte ptr [rsp - 0x5000], 0
	jmp qword ptr [rip]
	.quad 0
	.globl probe_end
probe_end:
