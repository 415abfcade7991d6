# Values the machine-code callbacks record themselves (--ret, -Z; see
# ../native.py): the small builtins, in the value word itself, so that no
# text is made in the program. Anything else (a float, a string, a
# subclass) the Python callback makes a record of. Source of
# _LPTRACE_NATIVE_VALUES_CODE in ../native_code.py (made by gen.sh).
#   encode    rax: an object -> rax: its value word, or 0 if it has none
#             here; changes r10 and r11 only (called from the callbacks
#             with their registers live)
#   encode_c  the same as a C function (the hook checks it at build)
# A value word: 1 << 63 | tag << 56 | payload; tags: 1 None, 2 False, 3
# True, 4 an int, the payload its 56-bit two's complement (an int outside
# that range has none). The hook's own value ids are far below 1 << 63.
# Placeholders: 0x2121... None, 0x2323... False, 0x2424... True,
# 0x2525... the int type (exact: no subclass), 0x2626... its layout: 1
# 2.7's int (a C long at 16), 2 a long before 3.12 (the signed digit
# count at 16), 3 from 3.12 on (digit count << 3 | sign at 16: 0
# positive, 1 zero, 2 negative); 30-bit digits, 32 bits each, from 24.

	.intel_syntax noprefix
	.text
	.globl encode
encode:
	endbr64
encode_here:
	movabs r10, 0x2121212121212121
	cmp rax, r10
	je enc_none
	movabs r10, 0x2323232323232323
	cmp rax, r10
	je enc_false
	movabs r10, 0x2424242424242424
	cmp rax, r10
	je enc_true
	mov r10, [rax+8]
	movabs r11, 0x2525252525252525
	cmp r10, r11
	jne enc_no
	movabs r11, 0x2626262626262626
	cmp r11, 1
	je enc_int27
	cmp r11, 2
	je enc_long
	# 3.12+
	push rcx
	mov r10, [rax+16]
	mov r11, r10
	shr r11, 3
	cmp r11, 2
	ja enc_no_pop
	mov rcx, r10
	and ecx, 3
	jmp enc_digits
enc_long:
	push rcx
	mov r11, [rax+16]
	mov rcx, r11
	test r11, r11
	jns enc_abs
	neg r11
enc_abs:
	cmp r11, 2
	ja enc_no_pop
	# rcx < 0: negative; make it 2, as the tag's sign
	test rcx, rcx
	mov ecx, 0
	jns enc_digits
	mov ecx, 2
enc_digits:
	# r11 digits (0-2), rcx sign (2 negative)
	xor r10d, r10d
	test r11, r11
	je enc_signed
	mov r10d, dword ptr [rax+24]
	cmp r11, 1
	je enc_signed
	mov r11d, dword ptr [rax+28]
	shl r11, 30
	or r10, r11
enc_signed:
	cmp ecx, 2
	jne enc_positive
	neg r10
enc_positive:
	pop rcx
	jmp enc_int
enc_int27:
	mov r10, [rax+16]
enc_int:
	# within 56 bits, signed
	mov r11, r10
	sar r11, 55
	je enc_fits
	cmp r11, -1
	jne enc_no
enc_fits:
	movabs r11, 0x00ffffffffffffff
	and r10, r11
	movabs rax, 0x8400000000000000
	or rax, r10
	ret
enc_none:
	movabs rax, 0x8100000000000000
	ret
enc_false:
	movabs rax, 0x8200000000000000
	ret
enc_true:
	movabs rax, 0x8300000000000000
	ret
enc_no_pop:
	pop rcx
enc_no:
	xor eax, eax
	ret

	.globl encode_c
encode_c:
	endbr64
	mov rax, rdi
	jmp encode_here
