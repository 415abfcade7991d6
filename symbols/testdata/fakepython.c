/*
 * A stand-in for libpython, for symbols/elf_test.go: it defines the entry
 * points lptrace looks up, a Py_Version constant that says 3.12.1, a
 * PY_VERSION-like string in read-only data, a static function (in .symtab
 * only), static data (.data, .bss) and an undefined reference to a Py symbol.
 * Nothing here is ever run. See build.sh.
 */

extern int PyUndefinedThing(void);

const unsigned long Py_Version = 0x030c01f0; /* 3.12.1 final */

/* "\0" "3.12.1" "\0": what pythonVersion's read-only data fallback looks for. */
const char lptrace_fake_py_version[] = "\0" "3.12.1";

int lptrace_fake_counter = 1;     /* .data */
int lptrace_fake_initialized;     /* .bss */

static int __attribute__((noinline)) fake_static_helper(int x)
{
	lptrace_fake_counter += x;
	return lptrace_fake_counter;
}

int PyGILState_Ensure(void) { return fake_static_helper(1); }
void PyGILState_Release(int state) { lptrace_fake_counter -= state; }
int PyRun_SimpleString(const char *s) { return s[0] == 0 ? 0 : -1; }
int Py_IsInitialized(void) { return lptrace_fake_initialized; }
int Py_AddPendingCall(int (*func)(void *), void *arg) { return func(arg); }
int PyGILState_Check(void) { return PyUndefinedThing(); }
