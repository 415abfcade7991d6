# The -c table kept inside the program (see ../native.py): what the
# callbacks (native_monitoring_amd64.s, native_profile_amd64.s) do with an
# event when the session wants only the table. C functions, called with
# the GIL held. Source of _LPTRACE_NATIVE_AGGREGATE_CODE in ../native_code.py
# (made by gen.sh).
#   agg(word, slot)  an event of the thread in thread-table slot SLOT
#   feed(word)       the same for the calling thread (the Python callback's
#                    events): 1, or 0 if the thread has no slot (its events
#                    then go to the ring)
#   reset(slot)      a slot now holds another thread: its calls are over
# Placeholders: 0x1111... the tables (now() at 0x101078), 0x1212... the
# ring, 0x1313... the table of counts (in the ring's slot, lptrace reads
# it), 0x1414... the threads' stacks (private).
# Counts: per function id (ids from 32767 on share the last entry) 32
# bytes: calls, own ns, total ns, exceptions.
# A thread's stack, 0x40000 bytes per slot: 0 depth, 8 calls past the
# deepest entry (counted, not timed), 16 time spent in calls that returned
# at depth 0 (nested in a call made before the machine code took over,
# which lptrace has from the ring); 64: 4000 entries of 32 bytes (function
# id, start ns, time in callees, outermost call of its function in this
# thread); 0x20000: per function id a 32-bit count of its calls open in
# this thread (a recursive function's total is that of its outermost call).
# A return with no open call of its function in the stack (made before the
# machine code took over, or before lptrace came) goes to the ring with
# the time of the calls nested in it (an event of kind 3, then the return),
# and lptrace counts it.

	.intel_syntax noprefix
	.text
	.globl agg
agg:
	endbr64
agg_here:	# (a call to the global name would need a relocation)
	push rbx
	push r12
	push r13
	push r14
	sub rsp, 8	# (aligned for the calls)
	mov rbx, rdi
	movabs r12, 0x1414141414141414
	shl rsi, 18
	add r12, rsi
	movabs r8, 0x1111111111111111
	call [r8+0x101078]
	mov r13, rax
	mov eax, ebx
	cmp eax, 0x7fff
	jb have_index
	mov eax, 0x7fff
have_index:
	mov r14, rax
	movabs r9, 0x1313131313131313
	shl rax, 5
	add r9, rax
	mov rcx, rbx
	shr rcx, 56
	test cl, 3
	jne agg_return
	test cl, 4	# a resumption is no new call: its time counts, not it
	jne agg_push
	inc qword ptr [r9]
agg_push:
	mov rdx, [r12]
	cmp rdx, 4000
	jae agg_deep
	lea r10, [r12+r14*4+0x20000]
	xor r11d, r11d
	cmp dword ptr [r10], 0
	sete r11b
	inc dword ptr [r10]
	mov rax, rdx
	shl rax, 5
	lea rax, [r12+rax+64]
	mov r10d, ebx
	mov [rax], r10
	mov [rax+8], r13
	mov qword ptr [rax+16], 0
	mov [rax+24], r11
	inc rdx
	mov [r12], rdx
	jmp agg_done
agg_deep:
	inc qword ptr [r12+8]
	jmp agg_done
agg_return:
	cmp qword ptr [r12+8], 0
	je agg_find
	dec qword ptr [r12+8]
	cmp rcx, 2
	jne agg_done
	inc qword ptr [r9+24]
	jmp agg_done
agg_find:
	mov rdx, [r12]
	mov r8d, ebx
find_next:
	test rdx, rdx
	je agg_unmatched
	dec rdx
	mov rax, rdx
	shl rax, 5
	lea rax, [r12+rax+64]
	cmp [rax], r8
	jne find_next
	# Found at index rdx: the calls above it (their returns were missed)
	# close untimed.
	mov r10, [r12]
pop_next:
	dec r10
	cmp r10, rdx
	jbe popped
	mov r11, r10
	shl r11, 5
	mov r11, [r12+r11+64]
	cmp r11, 0x7fff
	jb pop_index
	mov r11d, 0x7fff
pop_index:
	dec dword ptr [r12+r11*4+0x20000]
	jmp pop_next
popped:
	mov [r12], rdx
	dec dword ptr [r12+r14*4+0x20000]
	mov r10, r13
	sub r10, [rax+8]
	mov r11, r10
	sub r11, [rax+16]
	add [r9+8], r11
	cmp qword ptr [rax+24], 0
	je no_total
	add [r9+16], r10
no_total:
	cmp rcx, 2
	jne no_error
	inc qword ptr [r9+24]
no_error:
	test rdx, rdx
	je at_top
	add [rax-16], r10
	jmp agg_done
at_top:
	add [r12+16], r10
	jmp agg_done
agg_unmatched:
	# (3 << 56 | thread, time nested), then (word, now), each whole or
	# counted as dropped.
	movabs r10, 0x00ffffff00000000
	and r10, rbx
	movabs r11, 0x0300000000000000
	or r10, r11
	mov r11, [r12+16]
	mov qword ptr [r12+16], 0
	call put2
	mov r10, rbx
	mov r11, r13
	call put2
agg_done:
	add rsp, 8
	pop r14
	pop r13
	pop r12
	pop rbx
	ret
put2:
	movabs rcx, 0x1212121212121212
	mov rax, [rcx]
	mov rdx, rax
	sub rdx, [rcx+0x8]
	cmp rdx, 0x80000-2
	ja put2_full
	mov rdx, rax
	and rdx, 0x7ffff
	mov [rcx+rdx*8+0x1000], r10
	lea rdx, [rax+1]
	and rdx, 0x7ffff
	mov [rcx+rdx*8+0x1000], r11
	add rax, 2
	mov [rcx], rax
	ret
put2_full:
	inc qword ptr [rcx+0x10]
	ret

	.globl feed
feed:
	endbr64
	movabs r8, 0x1111111111111111
	mov rdx, fs:0
	mov r9, rdx
	shr r9, 12
	and r9, 0xff
feed_probe:
	mov r10, r9
	shl r10, 4
	cmp rdx, [r8+r10+0x100040]
	je feed_found
	cmp qword ptr [r8+r10+0x100040], 0
	je feed_none
	inc r9
	and r9, 0xff
	jmp feed_probe
feed_found:
	mov rsi, r9
	sub rsp, 8
	call agg_here
	add rsp, 8
	mov eax, 1
	ret
feed_none:
	xor eax, eax
	ret

	.globl reset
reset:
	endbr64
	movabs r8, 0x1414141414141414
	shl rdi, 18
	add r8, rdi
	mov rdx, [r8]
reset_next:
	test rdx, rdx
	je reset_done
	dec rdx
	mov rax, rdx
	shl rax, 5
	mov rax, [r8+rax+64]
	cmp rax, 0x7fff
	jb reset_index
	mov eax, 0x7fff
reset_index:
	dec dword ptr [r8+rax*4+0x20000]
	jmp reset_next
reset_done:
	mov qword ptr [r8], 0
	mov qword ptr [r8+8], 0
	mov qword ptr [r8+16], 0
	ret
