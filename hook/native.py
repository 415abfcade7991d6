# The machine-code callback of the calls-only hook (x86-64, with the GIL):
# on 3.12+ a builtin function registered for sys.monitoring's PY_START,
# before 3.12 a C profile function (PyEval_SetProfile, see the second code
# below); either records the event in a ring which the hook's timer thread
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
#   48 on (the profile function: 0 hands every event to SLOW, which then
#      removes it from its thread)
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


# The profile function (Python 2.7 to 3.11): int f(PyObject *self,
# PyFrameObject *frame, int what, PyObject *arg), installed per thread with
# self = the hook's Python profile function, SLOW. Python's own C function
# for sys.setprofile (profile_trampoline, 0x4444...) calls SLOW(frame,
# what, arg); a miss, and any event once "on" is 0, jumps there with the
# arguments untouched: this code is never on a stack while Python code
# runs, and holds the GIL from entry to exit. Other events than a call
# return 0 at once. The code object is [frame + 0x5555...], then [that +
# 0x6666...] unless that is 0 (3.11: the frame object points to its
# interpreter frame); both checked at install. A function whose id has the
# top bit set is filtered out: nothing is recorded. `install` makes it the
# calling thread's profile function (PyEval_SetProfile, 0x7777...) unless
# "on" is 0, in one call: a session that ends meanwhile (see retire() below)
# cannot miss it.
#  0000000000000000 <cb>:
#     0:  f3 0f 1e fa            endbr64
#     4:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#     b:  11 11 11 
#     e:  49 83 78 30 00         cmp    QWORD PTR [r8+0x30],0x0
#    13:  0f 84 00 01 00 00      je     119 <slow_any>
#    19:  85 d2                  test   edx,edx
#    1b:  75 65                  jne    82 <ret0>
#    1d:  49 b9 55 55 55 55 55   movabs r9,0x5555555555555555
#    24:  55 55 55 
#    27:  4a 8b 04 0e            mov    rax,QWORD PTR [rsi+r9*1]
#    2b:  49 b9 66 66 66 66 66   movabs r9,0x6666666666666666
#    32:  66 66 66 
#    35:  4d 85 c9               test   r9,r9
#    38:  74 04                  je     3e <have_code>
#    3a:  4a 8b 04 08            mov    rax,QWORD PTR [rax+r9*1]
#  000000000000003e <have_code>:
#    3e:  64 48 8b 14 25 00 00   mov    rdx,QWORD PTR fs:0x0
#    45:  00 00 
#    47:  49 3b 40 18            cmp    rax,QWORD PTR [r8+0x18]
#    4b:  75 3e                  jne    8b <lookup>
#    4d:  49 3b 50 20            cmp    rdx,QWORD PTR [r8+0x20]
#    51:  75 38                  jne    8b <lookup>
#    53:  4d 8b 48 28            mov    r9,QWORD PTR [r8+0x28]
#  0000000000000057 <append>:
#    57:  4d 8b 10               mov    r10,QWORD PTR [r8]
#    5a:  4d 89 d3               mov    r11,r10
#    5d:  4d 2b 58 08            sub    r11,QWORD PTR [r8+0x8]
#    61:  49 81 fb 00 00 04 00   cmp    r11,0x40000
#    68:  73 1b                  jae    85 <ring_full>
#    6a:  4d 89 d3               mov    r11,r10
#    6d:  49 81 e3 ff ff 03 00   and    r11,0x3ffff
#    74:  4f 89 8c d8 40 10 10   mov    QWORD PTR [r8+r11*8+0x101040],r9
#    7b:  00 
#    7c:  49 ff c2               inc    r10
#    7f:  4d 89 10               mov    QWORD PTR [r8],r10
#  0000000000000082 <ret0>:
#    82:  31 c0                  xor    eax,eax
#    84:  c3                     ret
#  0000000000000085 <ring_full>:
#    85:  49 ff 40 10            inc    QWORD PTR [r8+0x10]
#    89:  eb f7                  jmp    82 <ret0>
#  000000000000008b <lookup>:
#    8b:  49 89 c1               mov    r9,rax
#    8e:  49 c1 e9 04            shr    r9,0x4
#    92:  49 81 e1 ff ff 00 00   and    r9,0xffff
#  0000000000000099 <probe_code>:
#    99:  4d 89 ca               mov    r10,r9
#    9c:  49 c1 e2 04            shl    r10,0x4
#    a0:  4f 8b 5c 10 40         mov    r11,QWORD PTR [r8+r10*1+0x40]
#    a5:  49 39 c3               cmp    r11,rax
#    a8:  74 11                  je     bb <found_code>
#    aa:  4d 85 db               test   r11,r11
#    ad:  74 68                  je     117 <slow_call>
#    af:  49 ff c1               inc    r9
#    b2:  49 81 e1 ff ff 00 00   and    r9,0xffff
#    b9:  eb de                  jmp    99 <probe_code>
#  00000000000000bb <found_code>:
#    bb:  4f 8b 5c 10 48         mov    r11,QWORD PTR [r8+r10*1+0x48]
#    c0:  4d 85 db               test   r11,r11
#    c3:  78 bd                  js     82 <ret0>
#    c5:  49 89 d1               mov    r9,rdx
#    c8:  49 c1 e9 0c            shr    r9,0xc
#    cc:  49 81 e1 ff 00 00 00   and    r9,0xff
#  00000000000000d3 <probe_thread>:
#    d3:  4d 89 ca               mov    r10,r9
#    d6:  49 c1 e2 04            shl    r10,0x4
#    da:  4b 3b 94 10 40 00 10   cmp    rdx,QWORD PTR [r8+r10*1+0x100040]
#    e1:  00 
#    e2:  74 17                  je     fb <found_thread>
#    e4:  4b 83 bc 10 40 00 10   cmp    QWORD PTR [r8+r10*1+0x100040],0x0
#    eb:  00 00 
#    ed:  74 28                  je     117 <slow_call>
#    ef:  49 ff c1               inc    r9
#    f2:  49 81 e1 ff 00 00 00   and    r9,0xff
#    f9:  eb d8                  jmp    d3 <probe_thread>
#  00000000000000fb <found_thread>:
#    fb:  4f 8b 8c 10 48 00 10   mov    r9,QWORD PTR [r8+r10*1+0x100048]
#   102:  00 
#   103:  4d 09 d9               or     r9,r11
#   106:  49 89 40 18            mov    QWORD PTR [r8+0x18],rax
#   10a:  49 89 50 20            mov    QWORD PTR [r8+0x20],rdx
#   10e:  4d 89 48 28            mov    QWORD PTR [r8+0x28],r9
#   112:  e9 40 ff ff ff         jmp    57 <append>
#  0000000000000117 <slow_call>:
#   117:  31 d2                  xor    edx,edx
#  0000000000000119 <slow_any>:
#   119:  48 b8 44 44 44 44 44   movabs rax,0x4444444444444444
#   120:  44 44 44 
#   123:  ff e0                  jmp    rax
#  0000000000000125 <selftest>:
#   125:  f3 0f 1e fa            endbr64
#   129:  64 48 8b 04 25 00 00   mov    rax,QWORD PTR fs:0x0
#   130:  00 00 
#   132:  c3                     ret
#  0000000000000133 <install>:
#   133:  f3 0f 1e fa            endbr64
#   137:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   13e:  11 11 11 
#   141:  49 83 78 30 00         cmp    QWORD PTR [r8+0x30],0x0
#   146:  74 16                  je     15e <not_on>
#   148:  48 89 fe               mov    rsi,rdi
#   14b:  48 8d 3d ae fe ff ff   lea    rdi,[rip+0xfffffffffffffeae]        # 0 <cb>
#   152:  48 b8 77 77 77 77 77   movabs rax,0x7777777777777777
#   159:  77 77 77 
#   15c:  ff e0                  jmp    rax
#  000000000000015e <not_on>:
#   15e:  c3                     ret

_LPTRACE_NATIVE_PROFILE_CODE = (
    'f30f1efa49b8111111111111111149837830000f840001000085d2756549b95555555555'
    '5555554a8b040e49b966666666666666664d85c974044a8b040864488b14250000000049'
    '3b4018753e493b502075384d8b48284d8b104d89d34d2b58084981fb00000400731b4d89'
    'd34981e3ffff03004f898cd84010100049ffc24d891031c0c349ff4010ebf74989c149c1'
    'e9044981e1ffff00004d89ca49c1e2044f8b5c10404939c374114d85db746849ffc14981'
    'e1ffff0000ebde4f8b5c10484d85db78bd4989d149c1e90c4981e1ff0000004d89ca49c1'
    'e2044b3b94104000100074174b83bc104000100000742849ffc14981e1ff000000ebd84f'
    '8b8c10480010004d09d949894018498950204d894828e940ffffff31d248b84444444444'
    '444444ffe0f30f1efa64488b042500000000c3f30f1efa49b81111111111111111498378'
    '300074164889fe488d3daefeffff48b87777777777777777ffe0c3')
_LPTRACE_NATIVE_PROFILE_SELFTEST = 0x125
_LPTRACE_NATIVE_PROFILE_INSTALL = 0x133


def _lptrace_native_ring(slow):
    # The callback and its ring, or None where it cannot be used (then the
    # Python callback records every call). SLOW: the Python PY_START
    # callback (3.12+) or the Python profile function. Returns (install,
    # put, record, take, commit, off): install is the builtin function to
    # register (3.12+), or a function that makes the profile function this
    # thread's; off() hands every later event of the profile function to
    # SLOW. Any failure leaves nothing behind. (The program's audit hooks
    # see ctypes and mmap at work here; one that raises makes this fail.)
    import os
    import sys
    import struct
    import binascii
    if os.uname()[4] != 'x86_64' or struct.calcsize('P') != 8:
        return None
    if 't' in getattr(sys, 'abiflags', '') or not getattr(sys, '_is_gil_enabled', lambda: True)():
        return None  # free-threaded: calls are not serialized
    monitoring = sys.version_info >= (3, 12)
    import mmap
    import ctypes
    try:
        from _thread import get_ident
    except ImportError:
        from thread import get_ident
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's function settings are the program's
    if ctypes.addressof(ctypes.c_char.in_dll(api, '_Py_NoneStruct')) != id(None):
        return None  # another runtime's symbols come first in this process
    if monitoring:
        source, selftest = _LPTRACE_NATIVE_CODE, _LPTRACE_NATIVE_SELFTEST
        marks = ((0x2222222222222222, id(None)), (0x3333333333333333, id(slow)),
                 (0x4444444444444444, ctypes.cast(api.PyObject_Vectorcall, ctypes.c_void_p).value))
    else:
        source, selftest = _LPTRACE_NATIVE_PROFILE_CODE, _LPTRACE_NATIVE_PROFILE_SELFTEST
        where = _lptrace_frame_code_offsets(ctypes)
        found = _lptrace_profile_trampoline(api, ctypes)
        if where is None or found is None:
            return None
        trampoline, slot = found
        marks = ((0x4444444444444444, trampoline), (0x5555555555555555, where[0]),
                 (0x6666666666666666, where[1]),
                 (0x7777777777777777, ctypes.cast(api.PyEval_SetProfile, ctypes.c_void_p).value))
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
    if hasattr(memoryview, 'cast'):
        words = memoryview(data)[page:page + size].cast('Q')
        keep = (memoryview(text), words)  # exported: the mappings cannot be closed or resized
    else:  # 2.7: its mmap has no memoryview
        words = (ctypes.c_uint64 * (size // 8)).from_buffer(data, page)
        keep = (text, data, words)
    code = binascii.unhexlify(source)
    for mark, value in ((0x1111111111111111, daddr),) + marks:
        mark = struct.pack('<Q', mark)
        if mark not in code:
            return None
        code = code.replace(mark, struct.pack('<Q', value))
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
    if ctypes.CFUNCTYPE(ctypes.c_size_t)(taddr + selftest)() != get_ident():
        return None
    words[6] = 1  # on
    if monitoring:
        new = api.PyCFunction_NewEx
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
        # Its self keeps both mappings alive as long as the function lives.
        # SLOW is kept alive by it too.
        install = new(taddr + 1024, keep + (slow,), None)
    else:
        # A thread that runs the code holds SLOW (its profile object), and
        # SLOW the mappings, until retire() (or its own end).
        slow.lptrace_native = keep
        stub = ctypes.PYFUNCTYPE(None, ctypes.py_object)(taddr + _LPTRACE_NATIVE_PROFILE_INSTALL)
        install = lambda: (keep, stub(slow))  # (the code stays while this can be called)
        retire = _lptrace_profile_retire(api, ctypes, slot, taddr, trampoline)
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

    read = ctypes.string_at

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
            raw = read(daddr + RG + 8 * s, 8 * (e - s))
        else:
            raw = read(daddr + RG + 8 * s, 8 * (RN - s)) + read(daddr + RG, 8 * (e - RN))
        return raw, d, h

    def commit(mark):
        words[1] = mark

    def off():
        # No thread runs the code after this: each one's next event goes
        # to SLOW, which removes the profile function. The mappings go
        # with the last reference to them.
        words[6] = 0
        if not monitoring and retire():
            slow.__dict__.pop('lptrace_native', None)

    return install, put, record, take, commit, off


def _lptrace_frame_code_offsets(ctypes):
    # Where the profile function finds a frame's code object: (offset,
    # 0) or, on 3.11, (offset of the interpreter frame, offset in it);
    # checked on a frame of ours. None: neither layout (a debug build).
    import sys
    f = sys._getframe()
    frame, code = id(f), id(f.f_code)
    del f  # (a frame in its own locals: a cycle that keeps the caller's frame)
    word = lambda a: ctypes.c_void_p.from_address(a).value or 0
    if sys.version_info[:2] == (3, 11):
        if word(word(frame + 24) + 32) == code:
            return 24, 32
    elif sys.version_info < (3, 11) and word(frame + 32) == code:
        return 32, 0
    return None


def _lptrace_profile_trampoline(api, ctypes):
    # The C function sys.setprofile() installs (profile_trampoline, static
    # in sysmodule.c): read from this thread's state after two
    # sys.setprofile() calls, as the word two before the one holding the
    # profile object (c_profilefunc, c_tracefunc, c_profileobj: the same
    # order in 2.7 to 3.11). The thread's own profile function, if any, is
    # put back as it was, its C function included (cProfile's).
    import sys
    get_state = api.PyThreadState_Get
    get_state.restype = ctypes.c_void_p
    get_state.argtypes = []
    set_profile = api.PyEval_SetProfile
    set_profile.restype = None
    set_profile.argtypes = [ctypes.c_void_p, ctypes.py_object]
    state = (ctypes.c_void_p * 16).from_address(get_state())  # c_profileobj is word 7 to 10
    prev = sys.getprofile()
    probe_a = lambda frame, what, arg: None
    probe_b = lambda frame, what, arg: None
    before = [w or 0 for w in state]
    a = b = None
    try:
        sys.setprofile(probe_a)
        a = [w or 0 for w in state]
        sys.setprofile(probe_b)
        b = [w or 0 for w in state]
    finally:
        at = [i for i, w in enumerate(a or ()) if w == id(probe_a)]
        if prev is None:
            sys.setprofile(None)
        elif len(at) == 1 and at[0] >= 2 and before[at[0]] == id(prev) and before[at[0] - 2]:
            set_profile(before[at[0] - 2], prev)
        else:
            sys.setprofile(prev)
            at = ()
    if len(at) != 1 or at[0] < 2 or b[at[0]] != id(probe_b):
        return None
    f = a[at[0] - 2]
    if f == 0 or b[at[0] - 2] != f:
        return None
    return f, at[0] - 2


def _lptrace_profile_retire(api, ctypes, slot, code, trampoline):
    # retire(): every thread state whose profile function is CODE gets
    # Python's trampoline in its place (the word at SLOT; its profile
    # object, SLOW, stays: its next event goes there, and SLOW removes
    # itself). Under the GIL, which the code never releases, no thread is
    # in it meanwhile. True once every thread state was seen.
    fns = {}
    for name in ('PyInterpreterState_Head', 'PyInterpreterState_Next',
                 'PyInterpreterState_ThreadHead', 'PyThreadState_Next'):
        f = getattr(api, name)
        f.restype = ctypes.c_void_p
        f.argtypes = [] if name == 'PyInterpreterState_Head' else [ctypes.c_void_p]
        fns[name] = f
    word = ctypes.c_void_p.from_address
    an_exception = Exception  # bound: the payload's globals are cleared when the session ends

    def retire():
        try:
            i = fns['PyInterpreterState_Head']()
            while i:
                t = fns['PyInterpreterState_ThreadHead'](i)
                while t:
                    w = word(t + 8 * slot)
                    if w.value == code:
                        w.value = trampoline
                    t = fns['PyThreadState_Next'](t)
                i = fns['PyInterpreterState_Next'](i)
            return True
        except an_exception:
            return False  # the mappings stay with SLOW: no thread runs freed code
    return retire
