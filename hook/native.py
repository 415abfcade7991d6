# The machine-code callback of the calls-only hook (Python 3.12+ on x86-64
# with the GIL): a builtin function, registered for sys.monitoring's
# PY_START, that records the event in a ring which the hook's timer thread
# empties, at about a tenth of the cost of a Python callback. It knows
# only the functions and threads that the Python callback (SLOW) already
# defined; for anything else it hands the call, arguments untouched, to
# SLOW, which defines them, fills the tables below and records the event
# in the ring itself. It runs with the GIL held and never releases it, so
# the ring and tables need no atomics (nor do put() and record() below:
# no instruction between their reads and writes lets another thread run);
# it takes no reference.
#
# Data (one private anonymous mapping, read and written by the hook
# through a memoryview of 64-bit words):
#   0 head (words written)  8 tail (words taken)  16 words dropped (ring full)
#   24 latest code object  32 latest thread  40 latest event word
#   64          function table: 65536 slots of (code object address,
#               function id), linear probing, hash (address >> 4)
#   0x100040    thread table: 256 slots of (thread pointer, index << 32),
#               hash (pointer >> 12); the thread pointer (fs:0, per the
#               x86-64 ABI) is pthread_self(), the thread's get_ident()
#               (checked at install by `selftest`)
#   0x101040    the ring: 2**18 event words
# A key of 0 is an empty slot; the tables are kept at most half full (a
# function past that always goes through SLOW: slower, still right).
#
# The code (assembled with GNU as; placeholders: 0x1111... the data, 0x2222...
# None, immortal since 3.12, returned without a reference; 0x3333... SLOW;
# 0x4444... PyObject_Vectorcall, tail-called with the same arguments; a
# call with other than two arguments goes to SLOW too):
#      0:  f3 0f 1e fa            endbr64
#      4:  48 83 fa 02            cmp    rdx,0x2
#      8:  0f 85 e6 00 00 00      jne    f4
#      e:  48 8b 06               mov    rax,QWORD PTR [rsi]
#     11:  64 48 8b 0c 25 00 00   mov    rcx,QWORD PTR fs:0x0
#     18:  00 00
#     1a:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#     21:  11 11 11
#     24:  49 3b 40 18            cmp    rax,QWORD PTR [r8+0x18]
#     28:  75 46                  jne    70
#     2a:  49 3b 48 20            cmp    rcx,QWORD PTR [r8+0x20]
#     2e:  75 40                  jne    70
#     30:  4d 8b 48 28            mov    r9,QWORD PTR [r8+0x28]
#     34:  4d 8b 10               mov    r10,QWORD PTR [r8]
#     37:  4d 89 d3               mov    r11,r10
#     3a:  4d 2b 58 08            sub    r11,QWORD PTR [r8+0x8]
#     3e:  49 81 fb 00 00 04 00   cmp    r11,0x40000
#     45:  73 23                  jae    6a
#     47:  4d 89 d3               mov    r11,r10
#     4a:  49 81 e3 ff ff 03 00   and    r11,0x3ffff
#     51:  4f 89 8c d8 40 10 10   mov    QWORD PTR [r8+r11*8+0x101040],r9
#     58:  00
#     59:  49 ff c2               inc    r10
#     5c:  4d 89 10               mov    QWORD PTR [r8],r10
#     5f:  48 b8 22 22 22 22 22   movabs rax,0x2222222222222222
#     66:  22 22 22
#     69:  c3                     ret
#     6a:  49 ff 40 10            inc    QWORD PTR [r8+0x10]
#     6e:  eb ef                  jmp    5f
#     70:  49 89 c1               mov    r9,rax
#     73:  49 c1 e9 04            shr    r9,0x4
#     77:  49 81 e1 ff ff 00 00   and    r9,0xffff
#     7e:  4d 89 ca               mov    r10,r9
#     81:  49 c1 e2 04            shl    r10,0x4
#     85:  4f 8b 5c 10 40         mov    r11,QWORD PTR [r8+r10*1+0x40]
#     8a:  49 39 c3               cmp    r11,rax
#     8d:  74 11                  je     a0
#     8f:  4d 85 db               test   r11,r11
#     92:  74 60                  je     f4
#     94:  49 ff c1               inc    r9
#     97:  49 81 e1 ff ff 00 00   and    r9,0xffff
#     9e:  eb de                  jmp    7e
#     a0:  4f 8b 5c 10 48         mov    r11,QWORD PTR [r8+r10*1+0x48]
#     a5:  49 89 c9               mov    r9,rcx
#     a8:  49 c1 e9 0c            shr    r9,0xc
#     ac:  49 81 e1 ff 00 00 00   and    r9,0xff
#     b3:  4d 89 ca               mov    r10,r9
#     b6:  49 c1 e2 04            shl    r10,0x4
#     ba:  4b 8b bc 10 40 00 10   mov    rdi,QWORD PTR [r8+r10*1+0x100040]
#     c1:  00
#     c2:  48 39 cf               cmp    rdi,rcx
#     c5:  74 11                  je     d8
#     c7:  48 85 ff               test   rdi,rdi
#     ca:  74 28                  je     f4
#     cc:  49 ff c1               inc    r9
#     cf:  49 81 e1 ff 00 00 00   and    r9,0xff
#     d6:  eb db                  jmp    b3
#     d8:  4f 8b 8c 10 48 00 10   mov    r9,QWORD PTR [r8+r10*1+0x100048]
#     df:  00
#     e0:  4d 09 d9               or     r9,r11
#     e3:  49 89 40 18            mov    QWORD PTR [r8+0x18],rax
#     e7:  49 89 48 20            mov    QWORD PTR [r8+0x20],rcx
#     eb:  4d 89 48 28            mov    QWORD PTR [r8+0x28],r9
#     ef:  e9 40 ff ff ff         jmp    34 <cb+0x34>
#     f4:  48 bf 33 33 33 33 33   movabs rdi,0x3333333333333333
#     fb:  33 33 33
#     fe:  31 c9                  xor    ecx,ecx
#    100:  48 b8 44 44 44 44 44   movabs rax,0x4444444444444444
#    107:  44 44 44
#    10a:  ff e0                  jmp    rax
#   000000000000010c <selftest>:
#    10c:  f3 0f 1e fa            endbr64
#    110:  64 48 8b 04 25 00 00   mov    rax,QWORD PTR fs:0x0
#    117:  00 00
#    119:  c3                     ret

_LPTRACE_NATIVE_CODE = (
    'f30f1efa4883fa020f85e6000000488b0664488b0c250000000049b81111111111111111'
    '493b40187546493b482075404d8b48284d8b104d89d34d2b58084981fb0000040073234d'
    '89d34981e3ffff03004f898cd84010100049ffc24d891048b82222222222222222c349ff'
    '4010ebef4989c149c1e9044981e1ffff00004d89ca49c1e2044f8b5c10404939c374114d'
    '85db746049ffc14981e1ffff0000ebde4f8b5c10484989c949c1e90c4981e1ff0000004d'
    '89ca49c1e2044b8bbc10400010004839cf74114885ff742849ffc14981e1ff000000ebdb'
    '4f8b8c10480010004d09d949894018498948204d894828e940ffffff48bf333333333333'
    '333331c948b84444444444444444ffe0f30f1efa64488b042500000000c3')
_LPTRACE_NATIVE_SELFTEST = 0x10c


def _lptrace_native_ring(slow):
    # The callback and its ring, or None where it cannot be used (then the
    # Python callback records every call). Any failure leaves nothing
    # behind. (The program's audit hooks see ctypes and mmap at work here;
    # one that raises makes this fail.)
    import os
    import sys
    import struct
    if sys.version_info < (3, 12) or os.uname()[4] != 'x86_64' or struct.calcsize('P') != 8:
        return None
    if 't' in getattr(sys, 'abiflags', '') or not getattr(sys, '_is_gil_enabled', lambda: True)():
        return None  # free-threaded: calls are not serialized
    import mmap
    import ctypes
    from _thread import get_ident
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's function settings are the program's
    if ctypes.addressof(ctypes.c_char.in_dll(api, '_Py_NoneStruct')) != id(None):
        return None  # another runtime's symbols come first in this process
    CT, CN, TT, TN, RG, RN = 64, 1 << 16, 0x100040, 256, 0x101040, 1 << 18
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # private: a forked child writes its own copy
    page = mmap.PAGESIZE
    size = (RG + 8 * RN + page - 1) // page * page
    # The data between two inaccessible pages: an overrun faults at once,
    # and the kernel never merges it with a neighbour (it shows in
    # /proc/PID/maps as one rw-p mapping of this size; the tests look).
    data = mmap.mmap(-1, size + 2 * page, flags=flags)
    text = mmap.mmap(-1, page, flags=flags)
    base = ctypes.addressof(ctypes.c_char.from_buffer(data))
    daddr = base + page
    taddr = ctypes.addressof(ctypes.c_char.from_buffer(text))
    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(base, page, 0) != 0 or libc.mprotect(daddr + size, page, 0) != 0:
        return None
    data = memoryview(data)[page:page + size]
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
    if libc.mprotect(taddr, page, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        return None  # no executable memory here (SELinux execmem, say)
    # The thread pointer must be what get_ident() returns, or every call
    # would go to SLOW.
    if ctypes.CFUNCTYPE(ctypes.c_size_t)(taddr + _LPTRACE_NATIVE_SELFTEST)() != get_ident():
        return None
    new = api.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    words = data.cast('Q')
    # Its self keeps both mappings alive as long as the function lives, and
    # exported (memoryviews), so that they cannot be closed or resized: the
    # code and the method definition are never unmapped under it. SLOW is
    # kept alive by it too.
    fn = new(taddr + 1024, (memoryview(text), words, slow), None)
    used = [0, 0]

    def put(table, key, value):
        # Into the function (table 0) or thread (table 1) table, unless it
        # is half full.
        off, n, shift = ((CT, CN, 4), (TT, TN, 12))[table]
        if used[table] * 2 >= n:
            return
        base = off >> 3
        i = (key >> shift) & (n - 1)
        while True:
            k = words[base + 2 * i]
            if k == key:
                return
            if k == 0:
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
        # (at most `most` words, the words dropped since the last take, and
        # the mark to commit() once they are written: until then they stay)
        h, t, d = words[0], words[1], words[2]
        if d:
            words[2] = 0
        if h > t + most:
            h = t + most
        if h == t:
            return b'', d, t
        s = t & (RN - 1)
        e = s + (h - t)
        if e <= RN:
            raw = data[RG + 8 * s:RG + 8 * e].tobytes()
        else:
            raw = data[RG + 8 * s:RG + 8 * RN].tobytes() + data[RG:RG + 8 * (e - RN)].tobytes()
        return raw, d, h

    def commit(mark):
        words[1] = mark

    return fn, put, record, take, commit

