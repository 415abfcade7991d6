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
# runs, and holds the GIL from entry to exit. Other events return 0 at
# once, but for the return from os.fork or os.forkpty (0x8888..., 0x9999...:
# SLOW checks for a child; 2.7 and 3.6 have no os.register_at_fork). The
# code object is [frame + 0x5555...], then [that + 0x6666...] unless that
# is 0 (3.11: the frame object points to its interpreter frame); both
# checked at install. A function whose id has the top bit set is filtered
# out: nothing is recorded.
# The hook calls the other entries with the GIL held (ctypes.PYFUNCTYPE):
# before 3.11 a thread switch may happen between any two bytecodes, so
# what changes the data is done here, in one C call each:
#   install(SLOW)      PyEval_SetProfile(f, SLOW) (0x7777...) unless "on" is 0
#   record(word)       appends to the ring
#   take_dropped()     the dropped count, reset to 0
#   put_code(key, id), put_thread(key, word): 1 if added; tables at most
#                      half full (their counts at 0x301040 and 0x301048);
#                      a thread already there gets the new word (a new
#                      thread with a dead one's ID), and the latest-call
#                      cache is emptied
#   retire()           "on" = 0, and every thread state whose profile
#                      function is f gets the trampoline instead (the word
#                      at 0x5a5a...; PyInterpreterState_Head, ThreadHead,
#                      PyThreadState_Next, PyInterpreterState_Next:
#                      0xaaaa..., 0xbbbb..., 0xcccc..., 0xdddd...), so that no
#                      thread runs f afterwards; its next event goes to SLOW,
#                      which removes itself. A thread state is freed only
#                      with the GIL held, so the walk sees none go.
#  0000000000000000 <cb>:
#     0:  f3 0f 1e fa            endbr64
#     4:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#     b:  11 11 11 
#     e:  49 83 78 30 00         cmp    QWORD PTR [r8+0x30],0x0
#    13:  0f 84 2d 01 00 00      je     146 <slow_any>
#    19:  85 d2                  test   edx,edx
#    1b:  75 6e                  jne    8b <other_event>
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
#    4b:  75 6b                  jne    b8 <lookup>
#    4d:  49 3b 50 20            cmp    rdx,QWORD PTR [r8+0x20]
#    51:  75 65                  jne    b8 <lookup>
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
#  000000000000008b <other_event>:
#    8b:  83 fa 06               cmp    edx,0x6
#    8e:  75 f2                  jne    82 <ret0>
#    90:  49 b9 88 88 88 88 88   movabs r9,0x8888888888888888
#    97:  88 88 88 
#    9a:  4c 39 c9               cmp    rcx,r9
#    9d:  0f 84 a3 00 00 00      je     146 <slow_any>
#    a3:  49 b9 99 99 99 99 99   movabs r9,0x9999999999999999
#    aa:  99 99 99 
#    ad:  4c 39 c9               cmp    rcx,r9
#    b0:  0f 84 90 00 00 00      je     146 <slow_any>
#    b6:  eb ca                  jmp    82 <ret0>
#  00000000000000b8 <lookup>:
#    b8:  49 89 c1               mov    r9,rax
#    bb:  49 c1 e9 04            shr    r9,0x4
#    bf:  49 81 e1 ff ff 00 00   and    r9,0xffff
#  00000000000000c6 <probe_code>:
#    c6:  4d 89 ca               mov    r10,r9
#    c9:  49 c1 e2 04            shl    r10,0x4
#    cd:  4f 8b 5c 10 40         mov    r11,QWORD PTR [r8+r10*1+0x40]
#    d2:  49 39 c3               cmp    r11,rax
#    d5:  74 11                  je     e8 <found_code>
#    d7:  4d 85 db               test   r11,r11
#    da:  74 68                  je     144 <slow_call>
#    dc:  49 ff c1               inc    r9
#    df:  49 81 e1 ff ff 00 00   and    r9,0xffff
#    e6:  eb de                  jmp    c6 <probe_code>
#  00000000000000e8 <found_code>:
#    e8:  4f 8b 5c 10 48         mov    r11,QWORD PTR [r8+r10*1+0x48]
#    ed:  4d 85 db               test   r11,r11
#    f0:  78 90                  js     82 <ret0>
#    f2:  49 89 d1               mov    r9,rdx
#    f5:  49 c1 e9 0c            shr    r9,0xc
#    f9:  49 81 e1 ff 00 00 00   and    r9,0xff
#  0000000000000100 <probe_thread>:
#   100:  4d 89 ca               mov    r10,r9
#   103:  49 c1 e2 04            shl    r10,0x4
#   107:  4b 3b 94 10 40 00 10   cmp    rdx,QWORD PTR [r8+r10*1+0x100040]
#   10e:  00 
#   10f:  74 17                  je     128 <found_thread>
#   111:  4b 83 bc 10 40 00 10   cmp    QWORD PTR [r8+r10*1+0x100040],0x0
#   118:  00 00 
#   11a:  74 28                  je     144 <slow_call>
#   11c:  49 ff c1               inc    r9
#   11f:  49 81 e1 ff 00 00 00   and    r9,0xff
#   126:  eb d8                  jmp    100 <probe_thread>
#  0000000000000128 <found_thread>:
#   128:  4f 8b 8c 10 48 00 10   mov    r9,QWORD PTR [r8+r10*1+0x100048]
#   12f:  00 
#   130:  4d 09 d9               or     r9,r11
#   133:  49 89 40 18            mov    QWORD PTR [r8+0x18],rax
#   137:  49 89 50 20            mov    QWORD PTR [r8+0x20],rdx
#   13b:  4d 89 48 28            mov    QWORD PTR [r8+0x28],r9
#   13f:  e9 13 ff ff ff         jmp    57 <append>
#  0000000000000144 <slow_call>:
#   144:  31 d2                  xor    edx,edx
#  0000000000000146 <slow_any>:
#   146:  48 b8 44 44 44 44 44   movabs rax,0x4444444444444444
#   14d:  44 44 44 
#   150:  ff e0                  jmp    rax
#  0000000000000152 <selftest>:
#   152:  f3 0f 1e fa            endbr64
#   156:  64 48 8b 04 25 00 00   mov    rax,QWORD PTR fs:0x0
#   15d:  00 00 
#   15f:  c3                     ret
#  0000000000000160 <install>:
#   160:  f3 0f 1e fa            endbr64
#   164:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   16b:  11 11 11 
#   16e:  49 83 78 30 00         cmp    QWORD PTR [r8+0x30],0x0
#   173:  74 16                  je     18b <not_on>
#   175:  48 89 fe               mov    rsi,rdi
#   178:  48 8d 3d 81 fe ff ff   lea    rdi,[rip+0xfffffffffffffe81]        # 0 <cb>
#   17f:  48 b8 77 77 77 77 77   movabs rax,0x7777777777777777
#   186:  77 77 77 
#   189:  ff e0                  jmp    rax
#  000000000000018b <not_on>:
#   18b:  c3                     ret
#  000000000000018c <record>:
#   18c:  f3 0f 1e fa            endbr64
#   190:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   197:  11 11 11 
#   19a:  49 89 f9               mov    r9,rdi
#   19d:  e9 b5 fe ff ff         jmp    57 <append>
#  00000000000001a2 <take_dropped>:
#   1a2:  f3 0f 1e fa            endbr64
#   1a6:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   1ad:  11 11 11 
#   1b0:  31 c0                  xor    eax,eax
#   1b2:  49 87 40 10            xchg   QWORD PTR [r8+0x10],rax
#   1b6:  c3                     ret
#  00000000000001b7 <put_code>:
#   1b7:  f3 0f 1e fa            endbr64
#   1bb:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   1c2:  11 11 11 
#   1c5:  49 81 b8 40 10 30 00   cmp    QWORD PTR [r8+0x301040],0x8000
#   1cc:  00 80 00 00 
#   1d0:  73 47                  jae    219 <put_no>
#   1d2:  49 89 f9               mov    r9,rdi
#   1d5:  49 c1 e9 04            shr    r9,0x4
#   1d9:  49 81 e1 ff ff 00 00   and    r9,0xffff
#  00000000000001e0 <pc_probe>:
#   1e0:  4d 89 ca               mov    r10,r9
#   1e3:  49 c1 e2 04            shl    r10,0x4
#   1e7:  4f 8b 5c 10 40         mov    r11,QWORD PTR [r8+r10*1+0x40]
#   1ec:  49 39 fb               cmp    r11,rdi
#   1ef:  74 28                  je     219 <put_no>
#   1f1:  4d 85 db               test   r11,r11
#   1f4:  74 0c                  je     202 <pc_insert>
#   1f6:  49 ff c1               inc    r9
#   1f9:  49 81 e1 ff ff 00 00   and    r9,0xffff
#   200:  eb de                  jmp    1e0 <pc_probe>
#  0000000000000202 <pc_insert>:
#   202:  4b 89 74 10 48         mov    QWORD PTR [r8+r10*1+0x48],rsi
#   207:  4b 89 7c 10 40         mov    QWORD PTR [r8+r10*1+0x40],rdi
#   20c:  49 ff 80 40 10 30 00   inc    QWORD PTR [r8+0x301040]
#   213:  b8 01 00 00 00         mov    eax,0x1
#   218:  c3                     ret
#  0000000000000219 <put_no>:
#   219:  31 c0                  xor    eax,eax
#   21b:  c3                     ret
#  000000000000021c <put_thread>:
#   21c:  f3 0f 1e fa            endbr64
#   220:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   227:  11 11 11 
#   22a:  49 89 f9               mov    r9,rdi
#   22d:  49 c1 e9 0c            shr    r9,0xc
#   231:  49 81 e1 ff 00 00 00   and    r9,0xff
#  0000000000000238 <pt_probe>:
#   238:  4d 89 ca               mov    r10,r9
#   23b:  49 c1 e2 04            shl    r10,0x4
#   23f:  4f 8b 9c 10 40 00 10   mov    r11,QWORD PTR [r8+r10*1+0x100040]
#   246:  00 
#   247:  49 39 fb               cmp    r11,rdi
#   24a:  74 3b                  je     287 <pt_update>
#   24c:  4d 85 db               test   r11,r11
#   24f:  74 0c                  je     25d <pt_insert>
#   251:  49 ff c1               inc    r9
#   254:  49 81 e1 ff 00 00 00   and    r9,0xff
#   25b:  eb db                  jmp    238 <pt_probe>
#  000000000000025d <pt_insert>:
#   25d:  49 81 b8 48 10 30 00   cmp    QWORD PTR [r8+0x301048],0x80
#   264:  80 00 00 00 
#   268:  73 af                  jae    219 <put_no>
#   26a:  4b 89 b4 10 48 00 10   mov    QWORD PTR [r8+r10*1+0x100048],rsi
#   271:  00 
#   272:  4b 89 bc 10 40 00 10   mov    QWORD PTR [r8+r10*1+0x100040],rdi
#   279:  00 
#   27a:  49 ff 80 48 10 30 00   inc    QWORD PTR [r8+0x301048]
#   281:  b8 01 00 00 00         mov    eax,0x1
#   286:  c3                     ret
#  0000000000000287 <pt_update>:
#   287:  4b 89 b4 10 48 00 10   mov    QWORD PTR [r8+r10*1+0x100048],rsi
#   28e:  00 
#   28f:  49 c7 40 20 00 00 00   mov    QWORD PTR [r8+0x20],0x0
#   296:  00 
#   297:  31 c0                  xor    eax,eax
#   299:  c3                     ret
#  000000000000029a <retire>:
#   29a:  f3 0f 1e fa            endbr64
#   29e:  53                     push   rbx
#   29f:  41 54                  push   r12
#   2a1:  41 55                  push   r13
#   2a3:  49 b8 11 11 11 11 11   movabs r8,0x1111111111111111
#   2aa:  11 11 11 
#   2ad:  49 c7 40 30 00 00 00   mov    QWORD PTR [r8+0x30],0x0
#   2b4:  00 
#   2b5:  48 b8 aa aa aa aa aa   movabs rax,0xaaaaaaaaaaaaaaaa
#   2bc:  aa aa aa 
#   2bf:  ff d0                  call   rax
#   2c1:  48 89 c3               mov    rbx,rax
#  00000000000002c4 <interp_next>:
#   2c4:  48 85 db               test   rbx,rbx
#   2c7:  74 64                  je     32d <retired>
#   2c9:  48 89 df               mov    rdi,rbx
#   2cc:  48 b8 bb bb bb bb bb   movabs rax,0xbbbbbbbbbbbbbbbb
#   2d3:  bb bb bb 
#   2d6:  ff d0                  call   rax
#   2d8:  49 89 c4               mov    r12,rax
#  00000000000002db <state_next>:
#   2db:  4d 85 e4               test   r12,r12
#   2de:  74 39                  je     319 <interp_done>
#   2e0:  4c 8d 2d 19 fd ff ff   lea    r13,[rip+0xfffffffffffffd19]        # 0 <cb>
#   2e7:  48 b9 5a 5a 5a 5a 5a   movabs rcx,0x5a5a5a5a5a5a5a5a
#   2ee:  5a 5a 5a 
#   2f1:  4d 39 2c 0c            cmp    QWORD PTR [r12+rcx*1],r13
#   2f5:  75 0e                  jne    305 <state_done>
#   2f7:  48 ba 44 44 44 44 44   movabs rdx,0x4444444444444444
#   2fe:  44 44 44 
#   301:  49 89 14 0c            mov    QWORD PTR [r12+rcx*1],rdx
#  0000000000000305 <state_done>:
#   305:  4c 89 e7               mov    rdi,r12
#   308:  48 b8 cc cc cc cc cc   movabs rax,0xcccccccccccccccc
#   30f:  cc cc cc 
#   312:  ff d0                  call   rax
#   314:  49 89 c4               mov    r12,rax
#   317:  eb c2                  jmp    2db <state_next>
#  0000000000000319 <interp_done>:
#   319:  48 89 df               mov    rdi,rbx
#   31c:  48 b8 dd dd dd dd dd   movabs rax,0xdddddddddddddddd
#   323:  dd dd dd 
#   326:  ff d0                  call   rax
#   328:  48 89 c3               mov    rbx,rax
#   32b:  eb 97                  jmp    2c4 <interp_next>
#  000000000000032d <retired>:
#   32d:  41 5d                  pop    r13
#   32f:  41 5c                  pop    r12
#   331:  5b                     pop    rbx
#   332:  c3                     ret

_LPTRACE_NATIVE_PROFILE_CODE = (
    'f30f1efa49b8111111111111111149837830000f842d01000085d2756e49b95555555555'
    '5555554a8b040e49b966666666666666664d85c974044a8b040864488b14250000000049'
    '3b4018756b493b502075654d8b48284d8b104d89d34d2b58084981fb00000400731b4d89'
    'd34981e3ffff03004f898cd84010100049ffc24d891031c0c349ff4010ebf783fa0675f2'
    '49b988888888888888884c39c90f84a300000049b999999999999999994c39c90f849000'
    '0000ebca4989c149c1e9044981e1ffff00004d89ca49c1e2044f8b5c10404939c374114d'
    '85db746849ffc14981e1ffff0000ebde4f8b5c10484d85db78904989d149c1e90c4981e1'
    'ff0000004d89ca49c1e2044b3b94104000100074174b83bc104000100000742849ffc149'
    '81e1ff000000ebd84f8b8c10480010004d09d949894018498950204d894828e913ffffff'
    '31d248b84444444444444444ffe0f30f1efa64488b042500000000c3f30f1efa49b81111'
    '111111111111498378300074164889fe488d3d81feffff48b87777777777777777ffe0c3'
    'f30f1efa49b811111111111111114989f9e9b5fefffff30f1efa49b81111111111111111'
    '31c049874010c3f30f1efa49b811111111111111114981b8401030000080000073474989'
    'f949c1e9044981e1ffff00004d89ca49c1e2044f8b5c10404939fb74284d85db740c49ff'
    'c14981e1ffff0000ebde4b897410484b897c104049ff8040103000b801000000c331c0c3'
    'f30f1efa49b811111111111111114989f949c1e90c4981e1ff0000004d89ca49c1e2044f'
    '8b9c10400010004939fb743b4d85db740c49ffc14981e1ff000000ebdb4981b848103000'
    '8000000073af4b89b410480010004b89bc104000100049ff8048103000b801000000c34b'
    '89b4104800100049c740200000000031c0c3f30f1efa534154415549b811111111111111'
    '1149c740300000000048b8aaaaaaaaaaaaaaaaffd04889c34885db74644889df48b8bbbb'
    'bbbbbbbbbbbbffd04989c44d85e474394c8d2d19fdffff48b95a5a5a5a5a5a5a5a4d392c'
    '0c750e48ba44444444444444444989140c4c89e748b8ccccccccccccccccffd04989c4eb'
    'c24889df48b8ddddddddddddddddffd04889c3eb97415d415c5bc3')
_LPTRACE_NATIVE_PROFILE_ENTRIES = {'selftest': 0x152, 'install': 0x160, 'record': 0x18c, 'take_dropped': 0x1a2,
                                   'put_code': 0x1b7, 'put_thread': 0x21c, 'retire': 0x29a}


def _lptrace_native_ring(slow):
    # The callback and its ring, or None where it cannot be used (then the
    # Python callback records every call). SLOW: the Python PY_START
    # callback (3.12+) or the Python profile function. Returns (install,
    # put, record, take, commit, off): install is the builtin function to
    # register (3.12+), or a function that makes the profile function this
    # thread's; off() ends it: on 3.12+ after unregistering, before 3.12 no
    # thread runs the profile function afterwards (each one's next event
    # goes to SLOW, which removes itself). Any failure leaves nothing
    # behind. (The program's audit hooks see ctypes and mmap at work here;
    # one that raises makes this fail.)
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
    real = _lptrace_thread_functions()
    if real is None:
        return None
    get_ident = real[2]
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's function settings are the program's
    if ctypes.addressof(ctypes.c_char.in_dll(api, '_Py_NoneStruct')) != id(None):
        return None  # another runtime's symbols come first in this process
    c_function = lambda name: ctypes.cast(getattr(api, name), ctypes.c_void_p).value
    if monitoring:
        source, selftest = _LPTRACE_NATIVE_CODE, _LPTRACE_NATIVE_SELFTEST
        marks = ((0x2222222222222222, id(None)), (0x3333333333333333, id(slow)),
                 (0x4444444444444444, c_function('PyObject_Vectorcall')))
    else:
        entries = _LPTRACE_NATIVE_PROFILE_ENTRIES
        source, selftest = _LPTRACE_NATIVE_PROFILE_CODE, entries['selftest']
        where = _lptrace_frame_code_offsets(ctypes)
        found = _lptrace_profile_trampoline(api, ctypes)
        if where is None or found is None:
            return None
        trampoline, slot = found
        import posix
        forks = [getattr(posix, n, None) for n in ('fork', 'forkpty')]
        forks = [0 if f is None else id(f) for f in forks]
        marks = ((0x4444444444444444, trampoline), (0x5555555555555555, where[0]),
                 (0x6666666666666666, where[1]), (0x7777777777777777, c_function('PyEval_SetProfile')),
                 (0x8888888888888888, forks[0]), (0x9999999999999999, forks[1]),
                 (0x5a5a5a5a5a5a5a5a, 8 * slot),
                 (0xaaaaaaaaaaaaaaaa, c_function('PyInterpreterState_Head')),
                 (0xbbbbbbbbbbbbbbbb, c_function('PyInterpreterState_ThreadHead')),
                 (0xcccccccccccccccc, c_function('PyThreadState_Next')),
                 (0xdddddddddddddddd, c_function('PyInterpreterState_Next')))
    CT, CN, TT, TN, RG, RN = 64, 1 << 16, 0x100040, 256, 0x101040, 1 << 18
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # private: a forked child writes its own copy
    page = mmap.PAGESIZE
    size = (RG + 8 * RN + 16 + page - 1) // page * page  # (+16: the table counts of the profile function)
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
    # A C function: ctypes.string_at is Python code, which the timer thread
    # would trace on 3.12+ (sys.monitoring sees every thread).
    read = getattr(ctypes, '_string_at', None) or ctypes.string_at
    if monitoring:
        new = api.PyCFunction_NewEx
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
        # Its self keeps both mappings alive as long as the function lives.
        # SLOW is kept alive by it too.
        install = new(taddr + 1024, keep + (slow,), None)
        used = [0, 0]

        # On 3.12+ a thread switch happens only at a call or a backward
        # jump: none between a read here and the write that depends on it
        # (put()'s loop may switch between two slots: harmless, since
        # nothing is ever removed from the tables).
        def put(table, key, value):
            # Into the function (table 0) or thread (table 1) table, unless
            # it is half full. A thread already there gets the new value (a
            # new thread with a dead one's ID), and the cache is emptied.
            off, n, shift = ((CT, CN, 4), (TT, TN, 12))[table]
            base = off >> 3
            i = (key >> shift) & (n - 1)
            while True:
                k = words[base + 2 * i]
                if k == key:
                    if table:
                        words[base + 2 * i + 1] = value
                        words[4] = 0
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

        def take_dropped():
            d = words[2]
            if d:
                words[2] = 0
            return d

        def off():
            words[6] = 0
    else:
        # The entries of the code (see above), each one C call with the GIL
        # held. Each function that can call them holds the mappings (keep).
        entry = lambda name, *types: ctypes.PYFUNCTYPE(*types)(taddr + entries[name])
        c_word = ctypes.c_uint64
        set_profile = entry('install', None, ctypes.py_object)
        puts = (entry('put_code', ctypes.c_int, c_word, c_word), entry('put_thread', ctypes.c_int, c_word, c_word))
        record_c = entry('record', None, c_word)
        take_dropped_c = entry('take_dropped', c_word)
        retire = entry('retire', None)
        # A thread that runs the code holds SLOW (its profile object), and
        # SLOW the mappings, until retire() (or the thread's end).
        slow.lptrace_native = keep

        def install(keep=keep):
            set_profile(slow)
            if not words[6] and sys.getprofile() is slow:
                # The session ended while PyEval_SetProfile ran the
                # program's audit hooks (Python code: other threads ran).
                sys.setprofile(None)

        def put(table, key, value, keep=keep):
            puts[table](key, value)

        def record(word, keep=keep):
            record_c(word)

        def take_dropped(keep=keep):
            return take_dropped_c()

        def off(keep=keep):
            retire()
            slow.__dict__.pop('lptrace_native', None)

    def take(most):
        # (at most `most` words, the words dropped since the last take, and
        # the mark to commit() once they are written: until then they stay)
        h, t = words[0], words[1]
        d = take_dropped()
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
