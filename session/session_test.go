package session

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lptrace/lptrace/proc"
)

// pythons are the interpreters to test: LPTRACE_PYTHONS (as the
// integration tests take them), else python3 from PATH.
func pythons(t *testing.T) []string {
	if v := os.Getenv("LPTRACE_PYTHONS"); v != "" {
		return strings.Split(v, ":")
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no Python interpreter (set LPTRACE_PYTHONS)")
	}
	return []string{p}
}

// The session works without the binary: a real process is opened, runs
// code, and shows its stack.
func TestOpenExecStack(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(filepath.Base(py), func(t *testing.T) {
			script := filepath.Join(t.TempDir(), "idle.py")
			os.WriteFile(script, []byte(`
import sys, time
def idle_in_sleep():
    while True:
        time.sleep(0.05)
sys.stdout.write("ready\n"); sys.stdout.flush()
idle_in_sleep()
`), 0o644)
			cmd := exec.Command(py, script)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			buf := make([]byte, 6)
			if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
				t.Fatalf("the program did not start: %q %v", buf, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tgt, err := Open(cmd.Process.Pid, 0, func(m string) { t.Log(m) })
			if err != nil && strings.Contains(err.Error(), "free-threaded") {
				t.Skip(err) // refused, as TestRefusesFreeThreaded checks
			}
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err = tgt.Exec(ctx, Code{Source: []byte("6 * 7"), Timeout: 10 * time.Second, Stdout: &stdout, Stderr: &stderr})
			tgt.Close()
			if err != nil || strings.TrimSpace(stdout.String()) != "42" {
				t.Fatalf("exec 6 * 7: %q (stderr %q), %v", stdout.String(), stderr.String(), err)
			}
			tgt, err = Open(cmd.Process.Pid, DumpPipe, func(m string) { t.Log(m) })
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close()
			d, err := tgt.Stack(ctx, StackOptions{Width: 32, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Threads) != 1 || !d.Threads[0].Main || d.Threads[0].TID != cmd.Process.Pid {
				t.Fatalf("want the main thread %d alone: %+v", cmd.Process.Pid, d.Threads)
			}
			found := false
			for _, f := range d.Threads[0].Frames {
				found = found || f.Function == "idle_in_sleep" && strings.Contains(f.Source, "time.sleep")
			}
			if !found {
				t.Errorf("no frame of idle_in_sleep at its time.sleep line: %+v", d.Threads[0].Frames)
			}
			if !proc.Alive(cmd.Process.Pid) {
				t.Fatal("the program ended")
			}
		})
	}
}
