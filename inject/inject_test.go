package inject

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
	"golang.org/x/sys/unix"
)

// The engine against a real process (no Python needed): `sleep`, parked in
// clock_nanosleep. Calls run in it, the trampoline's abort rules hold, its
// bytes are put back, and the sleep still ends on time.
func TestRunInSleepingProcess(t *testing.T) {
	if !Supported {
		t.Skip(ErrUnsupportedArch)
	}
	cmd := exec.Command("sleep", "1.5")
	if !linkedWithLibc("sleep") {
		// busybox's static sleep (the arm64 test machine): Python sleeps
		// in the C library too.
		cmd = exec.Command("python3", "-c", "import time; time.sleep(1.5)")
	}
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	start := time.Now()
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	var maps []proc.Mapping
	for i := 0; i < 100; i++ {
		maps, _ = proc.ReadMaps(pid)
		if sc, _ := proc.ReadSyscall(pid, pid); !sc.Running && sc.Nr > 0 && len(maps) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	started := time.Since(start) // (python3 starts slowly in the emulated arm64 machine)
	inj := libcInjector(t, pid)
	tgt := inj.tgt
	ctx := context.Background()
	th, err := inj.Attach(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if !th.InCall {
		t.Fatalf("sleep is not in a system call (syscall %d)", th.Syscall)
	}
	before := make([]byte, 4096)
	padPage := tgt.Libc.PadEnd - 4096
	proc.VMRead(pid, padPage, before)

	const sysGetpid, sysGetppid = unix.SYS_GETPID, unix.SYS_GETPPID
	// Results feed later arguments; memcpy works; an abort skips the rest
	// but still runs Always and Cleanup calls.
	scratch := th.SP() - 64<<10
	res, aborted, err := th.Run(ctx, []Call{
		{Fn: FnSyscall, Aux: sysGetpid},
		{Fn: FnSyscall, Aux: sysGetppid},
		{Fn: FnMemcpy, Args: [6]uint64{scratch, scratch + 8, 8}},
		{Fn: FnSyscall, Aux: sysGetpid, Flags: AbortIfNonzero},
		{Fn: FnSyscall, Aux: sysGetpid}, // skipped
		{Fn: FnSyscall, Aux: sysGetppid, Flags: Always},
		{Fn: FnSyscall, Aux: sysGetpid, ArgFrom: [6]byte{1}, Flags: Cleanup},
	})
	if err != nil {
		t.Fatal(err)
	}
	if int(res[0]) != pid || int(res[1]) != os.Getpid() {
		t.Errorf("getpid/getppid = %d/%d, want %d/%d", res[0], res[1], pid, os.Getpid())
	}
	if aborted != 3 || res[4] != 0 || int(res[5]) != os.Getpid() || int(res[6]) != pid {
		t.Errorf("abort at %d, results %v", aborted, res)
	}
	// A raw system call error aborts with AbortIfError.
	res, aborted, err = th.Run(ctx, []Call{{Fn: FnSyscall, Aux: unix.SYS_MUNMAP, Args: [6]uint64{1, 1}, Flags: AbortIfError}})
	if err != nil || aborted != 0 || int64(res[0]) != -int64(syscall.EINVAL) {
		t.Errorf("munmap(1, 1): %v, abort %d, result %d", err, aborted, int64(res[0]))
	}
	if err := inj.Restore(th); err != nil {
		t.Fatal(err)
	}
	if err := th.Release(); err != nil {
		t.Fatal(err)
	}
	after := make([]byte, 4096)
	proc.VMRead(pid, padPage, after)
	if string(before) != string(after) {
		t.Error("the trampoline's bytes were not put back")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sleep failed after the injection: %v", err)
	}
	if took := time.Since(start); took < 1400*time.Millisecond || took > 3*time.Second+started {
		t.Errorf("sleep 1.5 took %v", took)
	}
}

// linkedWithLibc tells whether the command is a dynamic executable (one
// that maps a libc.so), as lptrace's padding search needs.
func linkedWithLibc(name string) bool {
	path, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, _ := f.Read(b)
	return strings.Contains(string(b[:n]), "libc.so")
}

// The data goes after the code, 8-byte aligned, and its address replaces
// the last placeholder only (text before it may hold the same bytes).
func TestPayloadImage(t *testing.T) {
	const ph = "0x1a7ace0da7aadd12"
	code := []byte("x = '" + ph + "'; load(" + ph + ")\x00")
	pl, err := newPayload(code, []byte("DATA"), ph)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newPayload([]byte("no placeholder"), []byte("DATA"), ph); err == nil {
		t.Error("code without the placeholder was accepted")
	}
	img := pl.image(0x10000)
	off := (len(code) + 7) &^ 7
	if len(img) != off+4 || pl.size() != len(img) || string(img[off:]) != "DATA" {
		t.Fatalf("image %q (size %d)", img, pl.size())
	}
	want := fmt.Sprintf("x = '%s'; load(0x%016x)\x00", ph, 0x10000+off)
	if string(img[:len(code)]) != want {
		t.Errorf("code %q, want %q", img[:len(code)], want)
	}
	if plain := (payload{code: code}); string(plain.image(0x10000)) != string(code) || plain.size() != off {
		t.Errorf("without data: %q", plain.image(0x10000))
	}
}

// Where the kernel answers PROCMAP_QUERY, the stack room, the writable
// check and the mapping at an address come from it: the same answers as
// from the whole text, for the stacks of a main thread and of a thread
// parked in a system call.
func TestMappingsQueryLikeText(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(py, "-c", "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\ntime.sleep(30)")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	// Both threads parked: blocked in a system call. (One waiting for the
	// other, for its start or for the GIL, is blocked only while the other
	// one runs, which then shows as running.)
	var tids []int
	parked := func() bool {
		tids, _ = proc.Threads(pid)
		for _, tid := range tids {
			if sc, err := proc.ReadSyscall(pid, tid); err != nil || sc.Running || sc.Nr < 0 {
				return false
			}
		}
		return len(tids) >= 2
	}
	for deadline := time.Now().Add(10 * time.Second); !parked(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the target's %d threads are not all parked in a system call", len(tids))
		}
	}
	q, err := proc.OpenMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !q.Queries() {
		t.Skip("this kernel has no PROCMAP_QUERY")
	}
	files, err := q.Files()
	if err != nil {
		t.Fatal(err)
	}
	text, err := proc.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	py3 := &symbols.Module{Path: files[0].Path}
	asked := &Injector{pid: pid, tgt: &symbols.Target{PID: pid, MapQuery: q, Maps: files, Python: py3}}
	read := &Injector{pid: pid, tgt: &symbols.Target{PID: pid, Maps: text, Python: py3}, mapsRead: time.Now()}
	for _, tid := range tids {
		sc, err := proc.ReadSyscall(pid, tid)
		if err != nil || sc.Running {
			t.Fatalf("thread %d: %+v, %v", tid, sc, err)
		}
		a, r := asked.stackRoom(sc.SP), read.stackRoom(sc.SP)
		if a != r || a < 4096 {
			t.Errorf("thread %d: stack room %d asked, %d from the text", tid, a, r)
		}
		if a, r := asked.mapped(sc.SP-256, 256), read.mapped(sc.SP-256, 256); !a || a != r {
			t.Errorf("thread %d: stack below sp writable: %v asked, %v from the text", tid, a, r)
		}
		if a, r := asked.inPendingMachinery(tid, sc.PC), read.inPendingMachinery(tid, sc.PC); !a || a != r {
			t.Errorf("thread %d, parked in the C library: in locking code %v asked, %v from the text", tid, a, r)
		}
	}
	for _, m := range text {
		a, aok := asked.mappingAt(m.End - 1)
		if m.Path != "[vsyscall]" && (!aok || a != m) {
			t.Errorf("mapping at %#x: %+v asked, %+v in the text", m.End-1, a, m)
		}
	}
}

// A thread traced by another process: PTRACE_SEIZE says EPERM, as for a
// refusal; Attach names the tracer instead, and runPython gives up at once
// for a tool that is not an lptrace (it would wait for one).
func TestAttachTracedByOther(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	st := exec.Command(strace, "-o", "/dev/null", "-p", fmt.Sprint(pid))
	if err := st.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { st.Process.Kill(); st.Wait() }()
	for i := 0; i < 200; i++ {
		if ts, err := proc.ReadTaskStatus(pid, pid); err == nil && ts.TracerPid != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	inj := New(ptrace.NewTracer(), &symbols.Target{PID: pid})
	_, err = inj.Attach(context.Background(), pid)
	te, ok := err.(*TracedError)
	if !ok {
		t.Fatalf("Attach: %v (%T), want a *TracedError", err, err)
	}
	if te.Tracer != st.Process.Pid || te.Name != "strace" || te.Lptrace || te.TID != pid {
		t.Errorf("Attach: %+v, want strace (%d)", te, st.Process.Pid)
	}
	if !final(context.Background(), te) {
		t.Error("a thread traced by strace does not end RunPython")
	}
	if final(context.Background(), &TracedError{TID: pid, Tracer: 1, Name: "lptrace", Lptrace: true}) {
		t.Error("a thread held by another lptrace ends RunPython")
	}
	if got := TracedByOther(pid); got == nil || got.Tracer != st.Process.Pid {
		t.Errorf("TracedByOther: %+v", got)
	}
}

// libcInjector is an injector for pid that knows its C library only (these
// tests call the C library's functions), closed at the test's end.
func libcInjector(t *testing.T, pid int) *Injector {
	t.Helper()
	maps, _ := proc.ReadMaps(pid)
	tgt := &symbols.Target{PID: pid, Maps: maps}
	for _, m := range maps {
		if strings.Contains(m.Path, "libc.so") && tgt.Libc == nil {
			libc, err := symbols.LoadModule(pid, maps, m.Path)
			if err != nil {
				t.Fatal(err)
			}
			tgt.Libc = libc
		}
	}
	if tgt.Libc == nil {
		t.Skip("the program is not linked with glibc's libc.so")
	}
	tgt.Python = tgt.Libc
	t.Cleanup(func() { tgt.Libc.Close() })
	return New(ptrace.NewTracer(), tgt)
}
