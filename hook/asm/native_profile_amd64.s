# The machine-code profile function of the hook (Python 2.7 to 3.11): int
# f(PyObject *self, PyFrameObject *frame, int what, PyObject *arg),
# installed per thread with self = the hook's Python profile function,
# SLOW; and the entries the hook calls with the GIL held (one C call each:
# before 3.11 a thread switch may come between any two bytecodes). Source
# of _LPTRACE_NATIVE_PROFILE_CODE in ../native_code.py (made by gen.sh); see
# ../native.py for what each part does.
# Placeholders, replaced when the hook builds it: 0x1111... the tables,
# 0x4444... CPython's profile_trampoline, 0x5555.../0x6666... where a
# frame's code object is, 0x7777... PyEval_SetProfile, 0x8888.../0x9999...
# os.fork and os.forkpty, 0x5a5a... the offset of a thread state's profile
# function, 0xaaaa...-0xdddd... PyInterpreterState_Head, _ThreadHead,
# PyThreadState_Next, PyInterpreterState_Next.
# Tables and ring: as the 3.12+ callbacks' (native_monitoring_amd64.s),
# with SLOW at 8 and the tables' counts at 0x101040 and 0x101048 of the
# tables; 0x1212... the ring.
# Events: a call (what 0; with mode bit 5 its arguments from args() at
# 0x1010a8 of the tables, native_args_amd64.s), a return (3; arg NULL: by
# exception; with bit 6 a value with no word of its own from value() at
# 0x101138) when the mode asks for returns, and os.fork()'s C return (6), which goes to SLOW.
# Registers: rax code, rdx thread, rdi kind << 56 (SLOW is reloaded from
# the tables), r8 tables, r9-r11 work; rsi and rcx stay for SLOW.

	.intel_syntax noprefix
	.text
cb:
	endbr64
	movabs r8, 0x1111111111111111
	cmp qword ptr [r8+0x30], 0
	je slow_any
	xor edi, edi
	test edx, edx
	je event
	cmp edx, 3
	jne other_event
	test byte ptr [r8+0x38], 1
	je ret0
	movabs rdi, 0x0100000000000000
	test rcx, rcx
	jne event
	movabs rdi, 0x0200000000000000
event:
	movabs r9, 0x5555555555555555
	mov rax, [rsi+r9]
	movabs r9, 0x6666666666666666
	test r9, r9
	je have_code
	mov rax, [rax+r9]
have_code:
	mov rdx, fs:0
	cmp rax, [r8+0x18]
	jne lookup
	cmp rdx, [r8+0x20]
	jne lookup
	mov r9, [r8+0x28]
append:
	or r9, rdi
	test byte ptr [r8+0x38], 4
	jne append_agg
	test byte ptr [r8+0x38], 0x12
	jne append_more
append_word:
	movabs rcx, 0x1212121212121212
	mov r10, [rcx]
	mov r11, r10
	sub r11, [rcx+0x8]
	cmp r11, 0x80000
	jae ring_full
	mov r11, r10
	and r11, 0x7ffff
	mov [rcx+r11*8+0x1000], r9
	inc r10
	mov [rcx], r10
ret0:
	xor eax, eax
	ret
ring_full:
	inc qword ptr [rcx+0x10]
	jmp ret0
append_agg:
	# The -c table in the program (native_aggregate_amd64.s).
	mov rdi, r9
	mov rsi, [r8+0x10]
	sub rsp, 8
	call [r8+0x101058]
	add rsp, 8
	jmp ret0
append_more:
	# The word, then the clock and the value word (native_values_amd64.s:
	# 0 for a call; an exception, or a value it cannot write, goes to
	# SLOW), as the mode asks: put_event (native_clock_amd64.s) writes them.
	xor edx, edx
	test byte ptr [r8+0x38], 0x10
	je have_value
	test rdi, rdi
	je call_value
	bt rdi, 57
	jc slow_event
	mov rax, rcx
	call [r8+0x101090]
	test rax, rax
	je record_value
	mov rdx, rax
	jmp have_value
record_value:
	# A value with no word of its own: a record of it (bit 6, value() at
	# 0x101138: native_args_amd64.s), or SLOW makes one.
	test byte ptr [r8+0x38], 0x40
	je slow_event
	push rsi
	push rcx
	push r9
	push rdi
	sub rsp, 8	# (aligned: rsp was 8 off at entry)
	mov rdi, rcx
	mov rsi, r9
	call [r8+0x101138]
	add rsp, 8
	pop rdi
	pop r9
	pop rcx
	pop rsi
	movabs r8, 0x1111111111111111
	test rax, rax
	je slow_event
	mov rdx, rax
	jmp have_value
call_value:
	# A call's value word: its arguments (-a: native_args_amd64.s), or
	# SLOW writes them.
	test byte ptr [r8+0x38], 0x20
	je have_value
	push rsi
	push rcx
	push r9	# (aligned: rsp was 8 off at entry)
	mov rdi, rax
	mov rdx, rsi
	mov rsi, r9
	call [r8+0x1010a8]
	pop r9
	pop rcx
	pop rsi
	movabs r8, 0x1111111111111111
	xor edi, edi
	test rax, rax
	je slow_event
	mov rdx, rax
have_value:
	mov rdi, r9
	mov rsi, rdx
	sub rsp, 8	# (aligned: rsp is 8 off at entry)
	call [r8+0x101098]
	add rsp, 8
	jmp ret0
other_event:
	cmp edx, 6
	jne ret0
	movabs r9, 0x8888888888888888
	cmp rcx, r9
	je slow_self
	movabs r9, 0x9999999999999999
	cmp rcx, r9
	je slow_self
	jmp ret0
lookup:
	mov r9, rax
	shr r9, 4
	and r9, 0xffff
probe_code:
	mov r10, r9
	shl r10, 4
	mov r11, [r8+r10+0x40]
	cmp r11, rax
	je found_code
	test r11, r11
	je slow_event
	inc r9
	and r9, 0xffff
	jmp probe_code
found_code:
	mov r11, [r8+r10+0x48]
	test r11, r11
	js ret0
	mov r9, rdx
	shr r9, 12
	and r9, 0xff
probe_thread:
	mov r10, r9
	shl r10, 4
	cmp rdx, [r8+r10+0x100040]
	je found_thread
	cmp qword ptr [r8+r10+0x100040], 0
	je slow_event
	inc r9
	and r9, 0xff
	jmp probe_thread
found_thread:
	mov [r8+0x10], r9
	mov r9, [r8+r10+0x100048]
	or r9, r11
	mov [r8+0x18], rax
	mov [r8+0x20], rdx
	mov [r8+0x28], r9
	jmp append
slow_event:
	# SLOW gets the event as it came: what (0 or 3) from the kind, self
	# from the tables; frame and arg are untouched.
	mov edx, 3
	test rdi, rdi
	jne slow_self
	xor edx, edx
slow_self:
	mov rdi, [r8+0x8]
slow_any:
	movabs rax, 0x4444444444444444
	jmp rax
	.globl selftest
selftest:
	endbr64
	mov rax, fs:0
	ret
	.globl install
install:
	endbr64
	movabs r8, 0x1111111111111111
	cmp qword ptr [r8+0x30], 0
	je not_on
	mov rsi, rdi
	lea rdi, [rip+cb]
	movabs rax, 0x7777777777777777
	jmp rax
not_on:
	ret
	.globl record
record:
	endbr64
	movabs r8, 0x1111111111111111
	mov r9, rdi
	jmp append_word
	.globl take_dropped
take_dropped:
	endbr64
	movabs r8, 0x1212121212121212
	xor eax, eax
	xchg [r8+0x10], rax
	ret
	.globl put_code
put_code:
	endbr64
	movabs r8, 0x1111111111111111
	cmp qword ptr [r8+0x101040], 0x8000
	jae put_no
	mov r9, rdi
	shr r9, 4
	and r9, 0xffff
pc_probe:
	mov r10, r9
	shl r10, 4
	mov r11, [r8+r10+0x40]
	cmp r11, rdi
	je put_no
	test r11, r11
	je pc_insert
	inc r9
	and r9, 0xffff
	jmp pc_probe
pc_insert:
	mov [r8+r10+0x48], rsi
	mov [r8+r10+0x40], rdi
	inc qword ptr [r8+0x101040]
	mov eax, 1
	ret
put_no:
	xor eax, eax
	ret
	.globl put_thread
put_thread:
	endbr64
	movabs r8, 0x1111111111111111
	mov r9, rdi
	shr r9, 12
	and r9, 0xff
pt_probe:
	mov r10, r9
	shl r10, 4
	mov r11, [r8+r10+0x100040]
	cmp r11, rdi
	je pt_update
	test r11, r11
	je pt_insert
	inc r9
	and r9, 0xff
	jmp pt_probe
pt_insert:
	cmp qword ptr [r8+0x101048], 0x80
	jae put_no
	mov [r8+r10+0x100048], rsi
	mov [r8+r10+0x100040], rdi
	inc qword ptr [r8+0x101048]
	mov eax, 1
	ret
pt_update:
	# A new thread with a dead one's ID: its slot's stack (-c in the
	# program) is the dead one's no more.
	cmp [r8+r10+0x100048], rsi
	je pt_same
	mov [r8+r10+0x100048], rsi
	mov qword ptr [r8+0x20], 0
	mov rax, [r8+0x101050]
	test rax, rax
	je pt_same
	mov rdi, r9
	jmp rax
pt_same:
	xor eax, eax
	ret
	.globl retire
retire:
	endbr64
	push rbx
	push r12
	push r13
	movabs r8, 0x1111111111111111
	mov qword ptr [r8+0x30], 0
	movabs rax, 0xaaaaaaaaaaaaaaaa
	call rax
	mov rbx, rax
interp_next:
	test rbx, rbx
	je retired
	mov rdi, rbx
	movabs rax, 0xbbbbbbbbbbbbbbbb
	call rax
	mov r12, rax
state_next:
	test r12, r12
	je interp_done
	lea r13, [rip+cb]
	movabs rcx, 0x5a5a5a5a5a5a5a5a
	cmp [r12+rcx], r13
	jne state_done
	movabs rdx, 0x4444444444444444
	mov [r12+rcx], rdx
state_done:
	mov rdi, r12
	movabs rax, 0xcccccccccccccccc
	call rax
	mov r12, rax
	jmp state_next
interp_done:
	mov rdi, rbx
	movabs rax, 0xdddddddddddddddd
	call rax
	mov rbx, rax
	jmp interp_next
retired:
	pop r13
	pop r12
	pop rbx
	ret

# The ring's writers for the Python callback (every tracing mode): an
# event of two or three words appended whole, or counted as dropped; and
# put_meta(bytes, n), a record (a definition, a value) into the byte ring
# at 0x401000 (1 MiB; head at 24, tail at 32, records dropped at 40): 1 if
# it fit, else 0.
	.globl record2
record2:
	endbr64
	movabs r8, 0x1212121212121212
	mov r10, [r8]
	mov r11, r10
	sub r11, [r8+0x8]
	cmp r11, 0x80000-2
	ja ring2_full
	mov r11, r10
	and r11, 0x7ffff
	mov [r8+r11*8+0x1000], rdi
	lea r11, [r10+1]
	and r11, 0x7ffff
	mov [r8+r11*8+0x1000], rsi
	add r10, 2
	mov [r8], r10
	xor eax, eax
	ret
	.globl record3
record3:
	endbr64
	movabs r8, 0x1212121212121212
	mov r10, [r8]
	mov r11, r10
	sub r11, [r8+0x8]
	cmp r11, 0x80000-3
	ja ring2_full
	mov r11, r10
	and r11, 0x7ffff
	mov [r8+r11*8+0x1000], rdi
	lea r11, [r10+1]
	and r11, 0x7ffff
	mov [r8+r11*8+0x1000], rsi
	lea r11, [r10+2]
	and r11, 0x7ffff
	mov [r8+r11*8+0x1000], rdx
	add r10, 3
	mov [r8], r10
	xor eax, eax
	ret
	.globl put_meta
put_meta:
	endbr64
	movabs r8, 0x1212121212121212
	mov r9, [r8+0x18]
	mov r10, r9
	sub r10, [r8+0x20]
	mov r11, 0x100000
	sub r11, r10
	cmp rsi, r11
	ja meta_full
	xor ecx, ecx
meta_copy:
	cmp rcx, rsi
	jae meta_done
	mov al, [rdi+rcx]
	lea r10, [r9+rcx]
	and r10, 0xfffff
	mov [r8+r10+0x401000], al
	inc rcx
	jmp meta_copy
meta_done:
	add r9, rsi
	mov [r8+0x18], r9
	mov eax, 1
	ret
meta_full:
	inc qword ptr [r8+0x28]
	xor eax, eax
	ret
ring2_full:
	inc qword ptr [r8+0x10]
	xor eax, eax
	ret
