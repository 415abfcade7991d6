# The clock of the machine-code callbacks (see ../native.py), and their
# writer of events of more than one word. The hook's own clock (time.perf_counter_ns's CLOCK_MONOTONIC, 2.7's time.time's
# CLOCK_REALTIME) in ns, read without a system call. Source of
# _LPTRACE_NATIVE_CLOCK_CODE in ../native_code.py (made by gen.sh).
#   now()        the clock: through clock_gettime (the vDSO), or, once
#                calibrated, from the time-stamp counter (rdtsc, a few
#                times cheaper: the vDSO's read waits for every
#                instruction before it)
#   put_event(word, value)  an event into the ring: the word, then the
#                clock and the value word, as the mode (tables+56: bit 1,
#                bit 4) asks; whole, or counted as dropped
#   calibrate()  a reading of both; the first is kept, and once 20 ms
#                later the counter's rate is known from the two, and the
#                counter is used (mode bit 3) from this reading on; a
#                rate that moved by more than 1/128 starts it over. Called
#                by the hook's timer thread with the GIL held, so no
#                callback reads the clock meanwhile. 1 if calibrated.
# The hook calibrates only where the kernel's own clock is the counter
# (clocksource tsc: one rate, the same on every CPU).
# Placeholders: 0x1111... the tables (0 clock_gettime, 56 mode; 0x101060
# the counter and 0x101068 the clock at the latest reading, 0x101070 ns
# per count << 32, 0x101080 and 0x101088 the first reading), 0x1212...
# the ring, 0x1515... the clock.

	.intel_syntax noprefix
	.text
	.globl now
now:
	endbr64
now_here:	# (a call to the global name would need a relocation)
	movabs r8, 0x1111111111111111
	test byte ptr [r8+0x38], 8
	jne now_tsc
	sub rsp, 24
	movabs rdi, 0x1515151515151515
	mov rsi, rsp
	call [r8]
	mov rax, [rsp]
	imul rax, rax, 1000000000
	add rax, [rsp+8]
	add rsp, 24
	ret
now_tsc:
	rdtsc
	shl rdx, 32
	or rax, rdx
	sub rax, [r8+0x101060]
	imul qword ptr [r8+0x101070]
	shrd rax, rdx, 32
	add rax, [r8+0x101068]
	ret

	.globl put_event
put_event:
	endbr64
	push rbx
	push r12
	sub rsp, 8
	mov rbx, rdi
	mov r12, rsi
	movabs r8, 0x1111111111111111
	xor eax, eax
	test byte ptr [r8+0x38], 2
	je have_clock
	call now_here
	movabs r8, 0x1111111111111111
have_clock:
	movabs rcx, 0x1212121212121212
	mov r10, [rcx]
	mov r11, r10
	sub r11, [rcx+0x8]
	cmp r11, 0x80000-3
	ja put_full
	mov r11, r10
	and r11, 0x7ffff
	mov [rcx+r11*8+0x1000], rbx
	inc r10
	test byte ptr [r8+0x38], 2
	je no_clock_word
	mov r11, r10
	and r11, 0x7ffff
	mov [rcx+r11*8+0x1000], rax
	inc r10
no_clock_word:
	test byte ptr [r8+0x38], 0x10
	je no_value_word
	mov r11, r10
	and r11, 0x7ffff
	mov [rcx+r11*8+0x1000], r12
	inc r10
no_value_word:
	mov [rcx], r10
	jmp put_done
put_full:
	inc qword ptr [rcx+0x10]
put_done:
	add rsp, 8
	pop r12
	pop rbx
	ret

	.globl calibrate
calibrate:
	endbr64
	push rbx
	push r12
	push r13
	push r14
	push r15
	sub rsp, 16
	movabs r13, 0x1111111111111111
	# Three readings, the one whose two counter reads are the closest
	# kept (a thread preempted in between is far off): the counter at its
	# middle in rbx, the clock in r12, the gap in r15.
	mov r14d, 3
	mov r15, -1
reading:
	rdtsc
	shl rdx, 32
	or rax, rdx
	push rax
	sub rsp, 8
	movabs rdi, 0x1515151515151515
	lea rsi, [rsp+16]
	call [r13]
	add rsp, 8
	pop rcx
	rdtsc
	shl rdx, 32
	or rax, rdx
	mov rdx, rax
	sub rdx, rcx
	cmp rdx, r15
	jae worse
	mov r15, rdx
	lea rbx, [rax+rcx]
	shr rbx, 1
	mov r12, [rsp]
	imul r12, r12, 1000000000
	add r12, [rsp+8]
worse:
	dec r14d
	jne reading
	mov rax, r12
	mov r12, rax
	cmp qword ptr [r13+0x101080], 0
	jne have_first
	mov [r13+0x101080], rbx
	mov [r13+0x101088], r12
	jmp not_yet
have_first:
	sub rax, [r13+0x101088]
	cmp rax, 20000000
	jl not_yet
	mov rcx, rbx
	sub rcx, [r13+0x101080]
	jle not_yet
	mov rdx, rax
	shr rdx, 32
	cmp rdx, rcx
	jae not_yet	# (a quotient past 64 bits: no counter runs that slow)
	shl rax, 32
	div rcx
	# A rate more than 1/128 off the one before: the two clocks parted
	# (a suspend, a migrated virtual machine). Start again from this
	# reading, on clock_gettime meanwhile.
	mov rcx, [r13+0x101070]
	test rcx, rcx
	je rate_ok
	mov rdx, rax
	sub rdx, rcx
	jns rate_diff
	neg rdx
rate_diff:
	shl rdx, 7
	cmp rdx, rcx
	jbe rate_ok
	and byte ptr [r13+0x38], 0xf7
	mov qword ptr [r13+0x101070], 0
	mov [r13+0x101080], rbx
	mov [r13+0x101088], r12
	jmp not_yet
rate_ok:
	mov [r13+0x101060], rbx
	mov [r13+0x101068], r12
	mov [r13+0x101070], rax
	or byte ptr [r13+0x38], 8
	mov eax, 1
	jmp calibrated
not_yet:
	xor eax, eax
calibrated:
	add rsp, 16
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret
