# The profile functions of other threads read and set in one C call each
# (Python 2.7 to 3.11; see ../threads.py): a thread may end, and its state
# be freed, at any thread switch, and one may come between any two
# bytecodes of Python code. Called with the GIL held (PYFUNCTYPE), which
# every change to the list of thread states needs.
# Both take a table of words: 0 this thread's state, 1 capacity in
# entries, 2 the byte offset of c_profilefunc (c_tracefunc follows it,
# then c_profileobj), 3 that of the int use_tracing (2.7-3.8), 4
# _PyEval_SetProfile (3.9+) or 0, 5 the offset of the thread's ident, 6-10
# PyInterpreterState_Head, PyInterpreterState_Next,
# PyInterpreterState_ThreadHead, PyThreadState_Next, Py_IncRef; 11 count
# and 12 interpreter (set by snapshot); 13 the address of a gate word
# (swap changes nothing while it is 0), or 0; entries of 8 words from 0x80:
# state, ident, profile function, profile object, the new function and
# object, result.
# Source of _LPTRACE_NATIVE_THREADS_CODE in ../native_code.py (gen.sh).

	.intel_syntax noprefix
	.text

# The callee-saved registers both entries use (five pushes: the stack
# stays 16-byte aligned for their calls).
	.macro enter_saved
	push rbx
	push r12
	push r13
	push r14
	push r15
	.endm
	.macro leave_saved
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret
	.endm

# snapshot(table): the thread states of this thread's interpreter, each
# one's ident, function and object (a reference to the object taken, for
# the caller to drop). Returns the count.
	.globl snapshot
snapshot:
	endbr64
	enter_saved
	mov rbx, rdi
	mov qword ptr [rbx+0x58], 0
	mov qword ptr [rbx+0x60], 0
	call qword ptr [rbx+0x30]
	mov r12, rax
find_interp:
	test r12, r12
	je snap_done
	mov rdi, r12
	call qword ptr [rbx+0x40]
	mov r13, rax
find_state:
	test r13, r13
	je interp_next
	cmp r13, [rbx]
	je found_interp
	mov rdi, r13
	call qword ptr [rbx+0x48]
	mov r13, rax
	jmp find_state
interp_next:
	mov rdi, r12
	call qword ptr [rbx+0x38]
	mov r12, rax
	jmp find_interp
found_interp:
	mov [rbx+0x60], r12
	mov rdi, r12
	call qword ptr [rbx+0x40]
	mov r13, rax
	lea r14, [rbx+0x80]
snap_state:
	test r13, r13
	je snap_done
	mov rax, [rbx+0x58]
	cmp rax, [rbx+0x8]
	jae snap_done
	mov [r14], r13
	mov rcx, [rbx+0x28]
	mov rax, [r13+rcx]
	mov [r14+0x8], rax
	mov rcx, [rbx+0x10]
	mov rax, [r13+rcx]
	mov [r14+0x10], rax
	mov rdi, [r13+rcx+0x10]
	mov [r14+0x18], rdi
	mov qword ptr [r14+0x20], 0
	mov qword ptr [r14+0x28], 0
	mov qword ptr [r14+0x30], 0
	test rdi, rdi
	je snap_no_ref
	call qword ptr [rbx+0x50]
snap_no_ref:
	inc qword ptr [rbx+0x58]
	add r14, 0x40
	mov rdi, r13
	call qword ptr [rbx+0x48]
	mov r13, rax
	jmp snap_state
snap_done:
	mov rax, [rbx+0x58]
	leave_saved

# swap(table): each entry (of count) whose state is still in the
# interpreter's list, with the same ident, function and object as
# snapshot saw, gets the new function and object, unless the gate is
# closed; result 1 (3: refused by an audit hook), 0 if gone or changed. 2.7-3.8: written here (the
# references are the caller's: one of the new object given, one of the old
# taken), the flag set as sys.setprofile does; 3.9+: by
# _PyEval_SetProfile, after which the list is walked again from its head
# (its audit hooks may have let other threads run).
	.globl swap
swap:
	endbr64
	enter_saved
	mov rbx, rdi
restart:
	mov rax, [rbx+0x68]
	test rax, rax
	je ungated
	cmp qword ptr [rax], 0
	je swap_done
ungated:
	mov rdi, [rbx+0x60]
	test rdi, rdi
	je swap_done
	call qword ptr [rbx+0x40]
	mov r12, rax
swap_state:
	test r12, r12
	je swap_done
	lea r13, [rbx+0x80]
	mov r14, [rbx+0x58]
	shl r14, 6
	add r14, r13
swap_scan:
	cmp r13, r14
	jae swap_advance
	cmp [r13], r12
	jne swap_skip
	cmp qword ptr [r13+0x30], 0
	jne swap_skip
	mov rcx, [rbx+0x28]
	mov rax, [r12+rcx]
	cmp rax, [r13+0x8]
	jne swap_skip
	mov rcx, [rbx+0x10]
	mov rax, [r12+rcx]
	cmp rax, [r13+0x10]
	jne swap_skip
	mov rax, [r12+rcx+0x10]
	cmp rax, [r13+0x18]
	jne swap_skip
	mov rax, [rbx+0x20]
	test rax, rax
	je swap_direct
	mov qword ptr [r13+0x30], 3
	mov rdi, r12
	mov rsi, [r13+0x20]
	mov rdx, [r13+0x28]
	call rax
	test eax, eax
	jne restart
	mov qword ptr [r13+0x30], 1
	jmp restart
swap_direct:
	mov rax, [r13+0x28]
	mov [r12+rcx+0x10], rax
	mov rax, [r13+0x20]
	mov [r12+rcx], rax
	mov edx, 1
	test rax, rax
	jne swap_flag
	cmp qword ptr [r12+rcx+0x8], 0
	jne swap_flag
	xor edx, edx
swap_flag:
	mov rax, [rbx+0x18]
	mov [r12+rax], edx
	mov qword ptr [r13+0x30], 1
	jmp swap_advance
swap_skip:
	add r13, 0x40
	jmp swap_scan
swap_advance:
	mov rdi, r12
	call qword ptr [rbx+0x48]
	mov r12, rax
	jmp swap_state
swap_done:
	leave_saved
