# Runs a command under a seccomp filter that makes ptrace(2) fail with
# EPERM, as a container's default profile may: noptrace.py PROG ARGS...
# (x86-64 only: the filter matches system call number 101).
import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)


def insn(code, k, jt=0, jf=0):
    return struct.pack('HBBI', code, jt, jf, k)


prog = (insn(0x20, 0) +                # load the system call number
        insn(0x15, 101, 0, 1) +        # ptrace?
        insn(0x06, 0x00050000 | 1) +   # then fail with EPERM
        insn(0x06, 0x7fff0000))        # else allow


class SockFprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]


buf = ctypes.create_string_buffer(prog)
fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
        libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit('noptrace.py: cannot install the filter: errno %d' % ctypes.get_errno())
os.execv(sys.argv[1], sys.argv[1:])
