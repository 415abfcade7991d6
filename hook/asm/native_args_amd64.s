# Values the machine code records as records (see ../native.py): the
# arguments of a call (-a), and a value returned that encode
# (native_values_amd64.s) cannot put in a value word (--ret), when each is
# a small builtin: None, a bool, an int of 56 bits, a float, an ASCII str
# or a bytes (their first `budget` bytes), a tuple of those (its first 16
# items), or an object of a type the hook taught (its name is lptrace's).
# Anything else (a list, a str subclass, *args) makes them return 0: the
# Python callback then writes them. C functions, called with the GIL held.
# Source of _LPTRACE_NATIVE_ARGS_CODE in ../native_code.py (made by gen.sh).
#   args(code, word, frame)
#                      the arguments of CODE's FRAME (before 3.12: the
#                      frame object the profile function got; 3.12+: 0, the
#                      thread's running frame), whose event word is WORD,
#                      as a G record in the ring's records: the event's
#                      value word (the record's id plus 1), or 0
#   value(object, word)
#                      the same for one value (a return's)
#   build(code, word, frame), build_value(object, word)
#                      their record, left in the scratch area only: its
#                      size, or 0 (the hook checks them at build)
# A G record: 'G', u32 size of what follows, then u64 id, u64 event word,
# u32 budget, and per value a value word (1 << 63 | tag << 56 | payload:
# tags 1-4 as encode's; 5 a float, its 8 bytes follow; 6 a str, 7 a
# bytes, the payload its length, then u32 bytes kept and the bytes; 8 an
# object of a type in the type table, the payload its address, its type
# follows; 9 a tuple, the payload its length, its first 16 items follow).
# Placeholders: 0x1111... the tables, 0x1212... the ring.
# Tables (private; set by the hook): 0x101090 encode, 0x1010a0 the next
# id, 0x1010b0 the C function returning the thread state, 0x1010b8 the
# offset of its current frame (0x1010c0: then the offset in what that
# points to, or -1), 0x1010c8 the frame's first local, 0x1010d0/d8/e0 the
# code's co_flags, co_argcount and co_kwonlyargcount (32 bits each),
# 0x1010e8 float's type, 0x1010f0 str's, 0x1010f8 the data of an ASCII
# str, 0x101100 its state bits (compact 0x20, ascii 0x40), 0x101108
# bytes' type, 0x101110 its data, 0x101118 the budget, 0x101120 where a
# frame object's frame is (3.11: the interpreter frame at 24) or -1,
# 0x101128 where a frame's code is, 0x101130 tuple's type, 0x101140 its
# first item (3.14+ keeps its hash before them); 0x101200 the
# scratch area, to 0x102000; 0x102000 the type table: 1024 type objects
# (0: an empty slot; linear probing, hash (address >> 4)), whose objects
# show as <Name at 0x...> (without -v: the Python callback shows them so
# too), each one's name told to lptrace (a Y record) and the type held by
# the hook while it is there.
# A frame's code (its first word) and locals are stack references from
# 3.14 on: the low two bits are tags (3: a tagged int, never an object).

	.intel_syntax noprefix
	.text
	.globl args
args:
	endbr64
	push rbx
	push r12
	push r13
	push r14
	push r15
	call build_here
	jmp put_record

	.globl value
value:
	endbr64
	push rbx
	push r12
	push r13
	push r14
	push r15
	call build_value_here
put_record:
	test rax, rax
	je args_done
	# Its id, then into the ring's records (bytes at 0x401000, 1 MiB;
	# head at 24, tail at 32, dropped at 40), unless they are full: the
	# event then shows without its value.
	mov r8, [r13+0x1010a0]
	lea r9, [r8+1]
	mov [r13+0x1010a0], r9
	mov [r13+0x101205], r8
	movabs r10, 0x1212121212121212
	mov r11, [r10+0x18]
	mov rcx, r11
	sub rcx, [r10+0x20]
	add rcx, rax
	cmp rcx, 0x100000
	ja args_full
	lea rsi, [r13+0x101200]
	mov rdx, rax
	mov rcx, r11
	and rcx, 0xfffff
	mov r8, 0x100000
	sub r8, rcx	# room before the end
	lea rdi, [r10+rcx+0x401000]
	mov rcx, rdx
	cmp rcx, r8
	jbe copy_rest
	mov rcx, r8
	rep movsb
	lea rdi, [r10+0x401000]
	mov rcx, rdx
	sub rcx, r8
copy_rest:
	rep movsb
	add r11, rdx
	mov [r10+0x18], r11
	mov rax, r9
	jmp args_done
args_full:
	inc qword ptr [r10+0x28]
	mov rax, r9
args_done:
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret

	.globl build
build:
	endbr64
	push rbx
	push r12
	push r13
	push r14
	push r15
	call build_here
	jmp built_done
	.globl build_value
build_value:
	endbr64
	push rbx
	push r12
	push r13
	push r14
	push r15
	call build_value_here
built_done:
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret

# rdi object, rsi word -> rax the record's size in the scratch area, or 0.
# Uses rbx, rbp, r12-r15 (saved by the entries), r13 the tables after.
build_value_here:
	push rbp
	push rdi	# the values: this one
	mov r12, rsp
	mov r14d, 1
	mov r15, rsi
	movabs r13, 0x1111111111111111
	call values_here
	pop rdi
	pop rbp
	ret

# rdi code, rsi word, rdx frame -> rax the record's size in the scratch
# area, or 0. The same registers.
build_here:
	push rbp	# (aligned for the call below)
	mov r12, rdi
	mov r15, rsi
	movabs r13, 0x1111111111111111
	# No *args or **kwargs (a tuple, a dict), at most 16 arguments.
	mov rcx, [r13+0x1010d0]
	test dword ptr [r12+rcx], 0xc
	jne no
	mov rcx, [r13+0x1010d8]
	mov r14d, dword ptr [r12+rcx]
	mov rcx, [r13+0x1010e0]
	add r14d, dword ptr [r12+rcx]
	cmp r14, 16
	ja no
	# The frame, which must be CODE's.
	mov rax, rdx
	mov rcx, [r13+0x101120]
	test rax, rax
	jne in_frame
	call [r13+0x1010b0]	# 3.12+: the running one
	test rax, rax
	je no
	mov rcx, [r13+0x1010b8]
	mov rax, [rax+rcx]
	mov rcx, [r13+0x1010c0]
in_frame:
	cmp rcx, -1
	je have_frame
	test rax, rax
	je no
	mov rax, [rax+rcx]
have_frame:
	test rax, rax
	je no
	mov rcx, [r13+0x101128]
	mov rcx, [rax+rcx]
	and rcx, -4
	cmp rcx, r12
	jne no
	add rax, [r13+0x1010c8]
	mov r12, rax	# the locals
	call values_here
	pop rbp
	ret
no:
	xor eax, eax
	pop rbp
	ret

# r12 the values (stack references allowed), r14 how many, r15 the word
# -> rax the record's size in the scratch area, or 0.
values_here:
	lea rbx, [r13+0x101200+25]	# where the next value goes
	mov byte ptr [r13+0x101200], 0x47	# 'G'
	mov [r13+0x101200+13], r15
	mov rax, [r13+0x101118]
	mov [r13+0x101200+21], eax
	xor ebp, ebp
one:
	cmp rbp, r14
	jae values_done
	mov r15, [r12+rbp*8]
	mov rcx, r15
	and ecx, 3
	cmp ecx, 3
	je values_no
	and r15, -4
	je values_no
	mov rax, [r15+8]
	cmp rax, [r13+0x101130]
	je a_tuple
	call scalar_here
	test eax, eax
	je values_no
	inc rbp
	jmp one
a_tuple:
	# Its length, then its first 16 items: none a tuple.
	lea rax, [rbx+8]
	lea rdx, [r13+0x102000]
	cmp rax, rdx
	ja values_no
	mov rcx, [r15+16]
	movabs rax, 0x8900000000000000
	or rax, rcx
	mov [rbx], rax
	add rbx, 8
	cmp rcx, 16
	jbe tuple_items
	mov ecx, 16
tuple_items:
	push r12
	push r14
	push rbp
	mov r12, r15
	add r12, [r13+0x101140]
	mov r14, rcx
	xor ebp, ebp
item:
	cmp rbp, r14
	jae items_done
	mov r15, [r12+rbp*8]
	mov rax, [r15+8]
	cmp rax, [r13+0x101130]
	je item_no
	call scalar_here
	test eax, eax
	je item_no
	inc rbp
	jmp item
items_done:
	pop rbp
	pop r14
	pop r12
	inc rbp
	jmp one
item_no:
	pop rbp
	pop r14
	pop r12
values_no:
	xor eax, eax
	ret
values_done:
	lea rax, [r13+0x101200]
	sub rbx, rax
	lea rcx, [rbx-5]
	mov [r13+0x101201], ecx
	mov rax, rbx
	ret

# r15 an object (not a tuple), rbx where it goes -> rbx past it, eax 1; or
# eax 0 (none here, or no room). Changes rax, rcx, rdx, rsi, rdi, r10, r11.
scalar_here:
	lea rax, [rbx+16]
	lea rdx, [r13+0x102000]
	cmp rax, rdx
	ja scalar_no
	mov rax, r15
	call [r13+0x101090]	# encode: changes r10, r11
	test rax, rax
	je not_small
	mov [rbx], rax
	add rbx, 8
	mov eax, 1
	ret
not_small:
	mov rax, [r15+8]
	cmp rax, [r13+0x1010e8]
	je a_float
	cmp rax, [r13+0x1010f0]
	je a_str
	cmp rax, [r13+0x101108]
	je a_bytes
	mov rcx, rax
	shr rcx, 4
	and ecx, 1023
probe_type:
	mov rdx, [r13+rcx*8+0x102000]
	cmp rdx, rax
	je an_object
	test rdx, rdx
	je scalar_no
	inc ecx
	and ecx, 1023
	jmp probe_type
an_object:
	movabs rcx, 0x8800000000000000
	or rcx, r15
	mov [rbx], rcx
	mov [rbx+8], rax
	add rbx, 16
	mov eax, 1
	ret
a_float:
	movabs rax, 0x8500000000000000
	mov [rbx], rax
	mov rax, [r15+16]
	mov [rbx+8], rax
	add rbx, 16
	mov eax, 1
	ret
a_str:
	mov rcx, [r13+0x101100]
	mov eax, dword ptr [r15+rcx]
	and eax, 0x60
	cmp eax, 0x60
	jne scalar_no
	mov rsi, [r13+0x1010f8]
	movabs rax, 0x8600000000000000
	jmp text
a_bytes:
	mov rsi, [r13+0x101110]
	movabs rax, 0x8700000000000000
text:
	add rsi, r15	# the bytes
	mov rcx, [r15+16]	# the length
	cmp rcx, [r13+0x101118]
	jbe kept
	mov rcx, [r13+0x101118]
kept:
	lea rdi, [rbx+12]
	lea rdx, [rdi+rcx]
	lea r10, [r13+0x102000]
	cmp rdx, r10
	ja scalar_no	# past the scratch area
	or rax, [r15+16]
	mov [rbx], rax
	mov [rbx+8], ecx
	rep movsb
	mov rbx, rdi
	mov eax, 1
	ret
scalar_no:
	xor eax, eax
	ret
