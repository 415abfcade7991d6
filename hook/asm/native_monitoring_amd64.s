# The machine-code callbacks of the hook (3.12+), METH_FASTCALL builtins:
# PyObject *f(PyObject *self, PyObject *const *args, Py_ssize_t nargs).
#   cb         PY_START, args = (code, offset): a call
#   cb_resume  PY_RESUME, args = (code, offset): a generator or coroutine
#              resumed (kind 4)
#   cb_yield   PY_YIELD, args = (code, offset, value): one suspended
#              (kind 5; no value recorded)
#   cb_throw   PY_THROW, args = (code, offset, exception): a resumption
#              too (a generator resumed by throw())
#   cb_return  PY_RETURN and PY_YIELD, args = (code, offset, value): a return
#   cb_unwind  PY_UNWIND, args = (code, offset, exception): a return by
#              exception
# Source of _LPTRACE_NATIVE_MONITORING_CODE in ../native_code.py (made by
# gen.sh); see ../native.py for what it does.
# Placeholders, replaced when the hook builds it: 0x1111... the tables,
# 0x1212... the ring, 0x2222... None (immortal since 3.12: returned without
# a reference), 0x3333.../0x3434.../0x3535.../0x3636.../0x3737.../
# 0x3838... SLOW of cb, cb_return, cb_unwind, cb_throw, cb_resume and
# cb_yield: the Python callback each hands what
# it does not know (tail-called through 0x4444..., PyObject_Vectorcall,
# with the same arguments; so is a call with an unexpected number of
# arguments).
# Tables (private): 0 clock_gettime, 16 the latest thread's slot in the
# thread table, 24/32/40 the latest (code, thread, word), 48 on (0: every
# event to SLOW, around a fork), 56 mode (bit 0 returns, bit 1 a clock word
# per event, bit 2 the -c table in the program instead: the event goes to
# agg, at 0x101058; reset at 0x101050; bit 3: now() reads the time-stamp
# counter; bit 4 a value word per event; bit 5 a call's value word is its
# arguments, from args() at 0x1010a8, native_args_amd64.s; bit 6 a value
# returned that has no word of its own goes to value() at 0x101138, ibid.), 64 the function table, 0x100040
# the thread table, 0x101078 now() and 0x101098 put_event()
# (native_clock_amd64.s), 0x101090 encode (native_values_amd64.s). Ring (shared with lptrace, see native.py): 0 head, 8 tail,
# 16 dropped, 0x1000 2**19 event words.
# Registers: rax code, rcx thread, rdi kind << 56, r8 tables, r9-r11 work.
# Kinds: 0 call, 1 return, 2 return by exception, 4 resume, 5 suspend:
# bit 58 marks the last two, which carry no value; 6 which frame the next
# one is (see append_more).

	.intel_syntax noprefix
	.text
	.globl cb
cb:
	endbr64
	xor edi, edi
	cmp rdx, 2
	jne slow
	jmp event
	.globl cb_throw
cb_throw:
	endbr64
	movabs rdi, 0x0400000000000000
	cmp rdx, 3
	jne slow
	jmp event
	.globl cb_return
cb_return:
	endbr64
	movabs rdi, 0x0100000000000000
	cmp rdx, 3
	jne slow
	jmp event
	.globl cb_resume
cb_resume:
	endbr64
	movabs rdi, 0x0400000000000000
	cmp rdx, 2
	jne slow
	jmp event
	.globl cb_yield
cb_yield:
	endbr64
	movabs rdi, 0x0500000000000000
	cmp rdx, 3
	jne slow
	jmp event
	.globl cb_unwind
cb_unwind:
	endbr64
	movabs rdi, 0x0200000000000000
	cmp rdx, 3
	jne slow
event:
	mov rax, [rsi]
	mov rcx, fs:0
	movabs r8, 0x1111111111111111
	cmp qword ptr [r8+0x30], 0       # off (around a fork): to SLOW
	je slow
	cmp rax, [r8+0x18]
	jne lookup
	cmp rcx, [r8+0x20]
	jne lookup
	mov r9, [r8+0x28]
append:
	or r9, rdi
	test byte ptr [r8+0x38], 4
	jne append_agg
	test byte ptr [r8+0x38], 0x12
	jne append_more
	movabs rcx, 0x1212121212121212
	mov r10, [rcx]
	mov r11, r10
	sub r11, [rcx+0x8]
	cmp r11, 0x80000
	jae full
	mov r11, r10
	and r11, 0x7ffff
	mov [rcx+r11*8+0x1000], r9
	inc r10
	mov [rcx], r10
ret_none:
	movabs rax, 0x2222222222222222
	ret
full:
	inc qword ptr [rcx+0x10]
	jmp ret_none
append_agg:
	# The -c table in the program (native_aggregate_amd64.s).
	mov rdi, r9
	mov rsi, [r8+0x10]
	sub rsp, 8
	call [r8+0x101058]
	add rsp, 8
	jmp ret_none
append_more:
	# A resumption or suspension with times: first which frame it is, so
	# that lptrace can time the whole call: an event of kind 6, an address
	# >> 3 in its low 32 bits. The thread state's running frame as
	# native_args_amd64.s finds it (0x1010b0: 0 if the hook found no
	# layout; then no such event): a generator's lives in it, the same
	# from its first start to its end; or its frame object if it has one
	# (at 0x101148 in it, or 0), as the Python callback names it.
	bt rdi, 58
	jnc event_more
	test byte ptr [r8+0x38], 2
	je event_more
	cmp qword ptr [r8+0x1010b0], 0
	je event_more
	push r9
	push rsi
	push rdi	# (aligned: rsp was 8 off at entry)
	call [r8+0x1010b0]
	movabs r8, 0x1111111111111111
	mov rcx, [r8+0x1010b8]
	mov rax, [rax+rcx]
	mov rcx, [r8+0x1010c0]
	cmp rcx, -1
	je have_frame
	mov rax, [rax+rcx]
have_frame:
	mov rcx, [r8+0x101148]
	test rcx, rcx
	je keyed
	mov rcx, [rax+rcx]
	test rcx, rcx
	je keyed
	mov rax, rcx
keyed:
	shr rax, 3
	mov eax, eax
	mov r9, [rsp+16]
	movabs r10, 0x00ffffff00000000
	and r9, r10
	or rax, r9
	movabs r10, 0x0600000000000000
	or rax, r10
	mov rdi, rax
	xor esi, esi
	call [r8+0x101098]
	pop rdi
	pop rsi
	pop r9
	movabs r8, 0x1111111111111111
event_more:
	# The word, then the clock and the value word (native_values_amd64.s:
	# 0 for a call; an exception, or a value it cannot write, goes to
	# SLOW), as the mode asks: put_event (native_clock_amd64.s) writes them.
	test byte ptr [r8+0x38], 0x10
	je no_value
	test rdi, rdi
	je call_value
	bt rdi, 58
	jc no_value
	bt rdi, 57
	jc slow_value
	mov rax, [rsi+16]
	call [r8+0x101090]
	test rax, rax
	je record_value
	mov rdx, rax
	jmp have_value
record_value:
	# A value with no word of its own: a record of it (bit 6, value() at
	# 0x101138: native_args_amd64.s), or SLOW makes one.
	test byte ptr [r8+0x38], 0x40
	je slow_value
	push r9
	push rsi
	push rdi	# (aligned: rsp was 8 off at entry)
	mov rdi, [rsi+16]
	mov rsi, r9
	call [r8+0x101138]
	pop rdi
	pop rsi
	pop r9
	movabs r8, 0x1111111111111111
	test rax, rax
	je slow_value
	mov rdx, rax
	jmp have_value
call_value:
	# A call's value word: its arguments (-a: native_args_amd64.s), or
	# SLOW writes them.
	test byte ptr [r8+0x38], 0x20
	je no_value
	push r9
	push rsi
	push rdx	# (aligned: rsp was 8 off at entry)
	mov rdi, rax
	mov rsi, r9
	xor edx, edx
	call [r8+0x1010a8]
	pop rdx
	pop rsi
	pop r9
	xor edi, edi
	test rax, rax
	je slow
	mov rdx, rax
	movabs r8, 0x1111111111111111
	jmp have_value
no_value:
	xor edx, edx
have_value:
	mov rdi, r9
	mov rsi, rdx
	sub rsp, 8	# (aligned: rsp is 8 off at entry)
	call [r8+0x101098]
	add rsp, 8
	jmp ret_none
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
	je slow
	inc r9
	and r9, 0xffff
	jmp probe_code
found_code:
	mov r11, [r8+r10+0x48]
	mov r9, rcx
	shr r9, 12
	and r9, 0xff
probe_thread:
	mov r10, r9
	shl r10, 4
	cmp rcx, [r8+r10+0x100040]
	je found_thread
	cmp qword ptr [r8+r10+0x100040], 0
	je slow
	inc r9
	and r9, 0xff
	jmp probe_thread
found_thread:
	mov [r8+0x10], r9
	mov r9, [r8+r10+0x100048]
	or r9, r11
	mov [r8+0x18], rax
	mov [r8+0x20], rcx
	mov [r8+0x28], r9
	jmp append
slow_value:
	mov edx, 3	# (nargs of a return: the value's encoding took rdx)
slow:
	xor ecx, ecx
	movabs rax, 0x4444444444444444
	bt rdi, 58
	jc slow_coroutine
	test rdi, rdi
	jne slow_return
	cmp rdx, 2
	je slow_call
	movabs rdi, 0x3636363636363636
	jmp rax
slow_return:
	bt rdi, 57
	jc slow_unwind
	movabs rdi, 0x3434343434343434
	jmp rax
slow_call:
	movabs rdi, 0x3333333333333333
	jmp rax
slow_unwind:
	movabs rdi, 0x3535353535353535
	jmp rax
slow_coroutine:
	bt rdi, 56
	jc slow_yield
	cmp rdx, 2
	jne slow_throw
	movabs rdi, 0x3737373737373737
	jmp rax
slow_throw:
	movabs rdi, 0x3636363636363636
	jmp rax
slow_yield:
	movabs rdi, 0x3838383838383838
	jmp rax
	.globl selftest
selftest:
	endbr64
	mov rax, fs:0
	ret
