# The machine-code callback of the calls-only hook (Python 3.12+ on x86-64
# with the GIL): a builtin function, registered for sys.monitoring's
# PY_START, that records the event in a ring which the hook's timer thread
# empties, at about a tenth of the cost of a Python callback. It knows
# only the functions and threads that the Python callback (SLOW) already
# defined; for anything else it hands the call, arguments untouched, to
# SLOW, which defines them, fills the tables below and records the event
# in the ring itself. It runs with the GIL held and never releases it, so
# the ring and tables need no atomics; it takes no reference.
#
# Data (one private anonymous mapping, read and written by the hook
# through a memoryview of 64-bit words):
#   0 head (words written)  8 tail (words taken)  16 words dropped (ring full)
#   24 latest code object  32 latest thread  40 latest event word
#   64          function table: 16384 slots of (code object address,
#               function id), linear probing, hash (address >> 4)
#   0x40040     thread table: 256 slots of (thread pointer, index << 32),
#               hash (pointer >> 12); the thread pointer (fs:0, per the
#               x86-64 ABI) is pthread_self(), the thread's get_ident()
#   0x41040     the ring: 2**18 event words
# A key of 0 is an empty slot; the tables are kept at most half full (a
# function past that always goes through SLOW: slower, still right).
#
# The code (assembled with GNU as; placeholders: 0x1111... the data, 0x2222...
# None, immortal since 3.12, returned without a reference; 0x3333... SLOW;
# 0x4444... PyObject_Vectorcall, tail-called with the same arguments; a
# call with other than two arguments goes to SLOW too):
#      0:  48 83 fa 02            cmp    rdx,0x2
#      4:  0f 85 e6 00 00 00      jne    f0
#      a:  48 8b 06               mov    rax,QWORD PTR [rsi]
#      d:  64 48 8b 0c 25 00 00   mov    rcx,QWORD PTR fs:0x0
#     14:  00 00
#     16:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#     1d:  11 11 11
#     20:  49 3b 40 18            cmp    rax,QWORD PTR [r8+0x18]
#     24:  75 46                  jne    6c
#     26:  49 3b 48 20            cmp    rcx,QWORD PTR [r8+0x20]
#     2a:  75 40                  jne    6c
#     2c:  4d 8b 48 28            mov    r9,QWORD PTR [r8+0x28]
#     30:  4d 8b 10               mov    r10,QWORD PTR [r8]
#     33:  4d 89 d3               mov    r11,r10
#     36:  4d 2b 58 08            sub    r11,QWORD PTR [r8+0x8]
#     3a:  49 81 fb 00 00 04 00   cmp    r11,0x40000
#     41:  73 23                  jae    66
#     43:  4d 89 d3               mov    r11,r10
#     46:  49 81 e3 ff ff 03 00   and    r11,0x3ffff
#     4d:  4f 89 8c d8 40 10 04   mov    QWORD PTR [r8+r11*8+0x41040],r9
#     54:  00
#     55:  49 ff c2               inc    r10
#     58:  4d 89 10               mov    QWORD PTR [r8],r10
#     5b:  48 b8 22 22 22 22 22   movabs rax,0x2222222222222222
#     62:  22 22 22
#     65:  c3                     ret
#     66:  49 ff 40 10            inc    QWORD PTR [r8+0x10]
#     6a:  eb ef                  jmp    5b
#     6c:  49 89 c1               mov    r9,rax
#     6f:  49 c1 e9 04            shr    r9,0x4
#     73:  49 81 e1 ff 3f 00 00   and    r9,0x3fff
#     7a:  4d 89 ca               mov    r10,r9
#     7d:  49 c1 e2 04            shl    r10,0x4
#     81:  4f 8b 5c 10 40         mov    r11,QWORD PTR [r8+r10*1+0x40]
#     86:  49 39 c3               cmp    r11,rax
#     89:  74 11                  je     9c
#     8b:  4d 85 db               test   r11,r11
#     8e:  74 60                  je     f0
#     90:  49 ff c1               inc    r9
#     93:  49 81 e1 ff 3f 00 00   and    r9,0x3fff
#     9a:  eb de                  jmp    7a
#     9c:  4f 8b 5c 10 48         mov    r11,QWORD PTR [r8+r10*1+0x48]
#     a1:  49 89 c9               mov    r9,rcx
#     a4:  49 c1 e9 0c            shr    r9,0xc
#     a8:  49 81 e1 ff 00 00 00   and    r9,0xff
#     af:  4d 89 ca               mov    r10,r9
#     b2:  49 c1 e2 04            shl    r10,0x4
#     b6:  4b 8b bc 10 40 00 04   mov    rdi,QWORD PTR [r8+r10*1+0x40040]
#     bd:  00
#     be:  48 39 cf               cmp    rdi,rcx
#     c1:  74 11                  je     d4
#     c3:  48 85 ff               test   rdi,rdi
#     c6:  74 28                  je     f0
#     c8:  49 ff c1               inc    r9
#     cb:  49 81 e1 ff 00 00 00   and    r9,0xff
#     d2:  eb db                  jmp    af
#     d4:  4f 8b 8c 10 48 00 04   mov    r9,QWORD PTR [r8+r10*1+0x40048]
#     db:  00
#     dc:  4d 09 d9               or     r9,r11
#     df:  49 89 40 18            mov    QWORD PTR [r8+0x18],rax
#     e3:  49 89 48 20            mov    QWORD PTR [r8+0x20],rcx
#     e7:  4d 89 48 28            mov    QWORD PTR [r8+0x28],r9
#     eb:  e9 40 ff ff ff         jmp    30 <cb+0x30>
#     f0:  48 bf 33 33 33 33 33   movabs rdi,0x3333333333333333
#     f7:  33 33 33
#     fa:  31 c9                  xor    ecx,ecx
#     fc:  48 b8 44 44 44 44 44   movabs rax,0x4444444444444444
#    103:  44 44 44
#    106:  ff e0                  jmp    rax

_LPTRACE_NATIVE_CODE = (
    '4883fa020f85e6000000488b0664488b0c250000000049b81111111111111111493b4018'
    '7546493b482075404d8b48284d8b104d89d34d2b58084981fb0000040073234d89d34981'
    'e3ffff03004f898cd84010040049ffc24d891048b82222222222222222c349ff4010ebef'
    '4989c149c1e9044981e1ff3f00004d89ca49c1e2044f8b5c10404939c374114d85db7460'
    '49ffc14981e1ff3f0000ebde4f8b5c10484989c949c1e90c4981e1ff0000004d89ca49c1'
    'e2044b8bbc10400004004839cf74114885ff742849ffc14981e1ff000000ebdb4f8b8c10'
    '480004004d09d949894018498948204d894828e940ffffff48bf333333333333333331c9'
    '48b84444444444444444ffe0')


def _lptrace_native_ring(slow):
    # The callback and its ring, or None where it cannot be used (then the
    # Python callback records every call). Nothing here runs the program's
    # code; any failure leaves nothing behind.
    import os
    import sys
    if sys.version_info < (3, 12) or os.uname()[4] != 'x86_64':
        return None
    if not getattr(sys, '_is_gil_enabled', lambda: True)():
        return None  # free-threaded: calls are not serialized
    import mmap
    import struct
    import ctypes
    CT, CN, TT, TN, RG, RN = 64, 16384, 0x40040, 256, 0x41040, 1 << 18
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # private: a forked child writes its own copy
    data = mmap.mmap(-1, RG + 8 * RN, flags=flags)
    text = mmap.mmap(-1, mmap.PAGESIZE, flags=flags)
    daddr = ctypes.addressof(ctypes.c_char.from_buffer(data))
    taddr = ctypes.addressof(ctypes.c_char.from_buffer(text))
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's function settings are the program's
    vectorcall = ctypes.cast(api.PyObject_Vectorcall, ctypes.c_void_p).value
    code = bytes.fromhex(_LPTRACE_NATIVE_CODE)
    for mark, value in ((0x1111111111111111, daddr), (0x2222222222222222, id(None)),
                        (0x3333333333333333, id(slow)), (0x4444444444444444, vectorcall)):
        mark = struct.pack('<Q', mark)
        i = code.index(mark)
        code = code[:i] + struct.pack('<Q', value) + code[i + 8:]
    if len(code) > 1024:
        return None
    text[0:len(code)] = code
    # PyMethodDef {name, function, METH_FASTCALL, doc} and the name, after it
    text[1024:1056] = struct.pack('<QQiiQ', taddr + 1056, taddr, 0x80, 0, 0)
    text[1056:1072] = b'lptrace_native\0\0'
    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(taddr, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        return None  # no executable memory here (SELinux execmem, say)
    new = api.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    # Its self keeps both mappings alive as long as the function lives:
    # the code and the method definition are never unmapped under it.
    # SLOW is kept alive by whoever holds the function (the hook).
    fn = new(taddr + 1024, (text, data, slow), None)
    words = memoryview(data).cast('Q')
    used = [0, 0]

    def put(table, key, value):
        # Into the function (table 0) or thread (table 1) table, unless it
        # is half full.
        off, n, shift = ((CT, CN, 4), (TT, TN, 12))[table]
        base = off >> 3
        i = (key >> shift) & (n - 1)
        while True:
            k = words[base + 2 * i]
            if k == key:
                return
            if k == 0:
                if used[table] * 2 >= n:
                    return
                used[table] += 1
                words[base + 2 * i + 1] = value
                words[base + 2 * i] = key
                return
            i = (i + 1) & (n - 1)

    def record(word):
        h = words[0]
        if h - words[1] >= RN:
            words[2] += 1
            return
        words[(RG >> 3) + (h & (RN - 1))] = word
        words[0] = h + 1

    def take(most):
        # (at most `most` words, the words dropped) since the last take
        h, t, d = words[0], words[1], words[2]
        if d:
            words[2] = 0
        h = min(h, t + most)
        if h == t:
            return b'', d
        s = t & (RN - 1)
        e = s + (h - t)
        if e <= RN:
            raw = data[RG + 8 * s:RG + 8 * e]
        else:
            raw = data[RG + 8 * s:RG + 8 * RN] + data[RG:RG + 8 * (e - RN)]
        words[1] = h
        return raw, d

    return fn, put, record, take
