# The machine-code PY_START callback of the calls-only hook (3.12+), a
# METH_FASTCALL builtin: PyObject *cb(PyObject *self, PyObject *const *args,
# Py_ssize_t nargs), args = (code, offset). Source of _LPTRACE_NATIVE_CODE in
# ../native_code.py (made by gen.sh); see ../native.py for what it does.
# Placeholders, replaced when the hook builds it: 0x1111... the tables,
# 0x1212... the ring, 0x2222... None (immortal since 3.12: returned without
# a reference), 0x3333... SLOW, 0x4444... PyObject_Vectorcall (tail-called
# with the same arguments; a call with other than two arguments goes to
# SLOW too).
# Tables (private): 24/32/40 the latest (code, thread, word), 48 on (0:
# every call to SLOW, around a fork), 64 the
# function table, 0x100040 the thread table. Ring (shared with lptrace, see
# native.py): 0 head, 8 tail, 16 dropped, 0x1000 2**19 event words.

	.intel_syntax noprefix
	.text
	.globl cb
cb:
	endbr64
	cmp rdx, 2
	jne slow
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
	mov rdi, [r8+r10+0x100040]
	cmp rdi, rcx
	je found_thread
	test rdi, rdi
	je slow
	inc r9
	and r9, 0xff
	jmp probe_thread
found_thread:
	mov r9, [r8+r10+0x100048]
	or r9, r11
	mov [r8+0x18], rax
	mov [r8+0x20], rcx
	mov [r8+0x28], r9
	jmp append
slow:
	movabs rdi, 0x3333333333333333
	xor ecx, ecx
	movabs rax, 0x4444444444444444
	jmp rax
	.globl selftest
selftest:
	endbr64
	mov rax, fs:0
	ret
