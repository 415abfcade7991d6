package tests

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// An idle asyncio server waits in epoll_wait, with no timeout at all (or
// with one, when timers are due): exec, stack and attach reach it at once,
// it answers throughout and after, and nothing of lptrace stays. Every
// idle asyncio or aiohttp server is in this state.
func TestRealAsyncioServer(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue
		}
		for _, mode := range []string{"idle", "timers"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startProgram(t, py, "asyncio_server.py", mode)
				pid := strconv.Itoa(tg.PID)
				c := dial(t, tg.Port)
				state := func() string { return c.ask(t, "state") }
				fp := state() // (the server has accepted the connection)
				before := readOSState(tg.PID)

				r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7")
				if r.Code != 0 || r.Stdout != "42\n" {
					t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				r = lptrace(t, "", "stack", "--timeout", "10s", pid)
				if r.Code != 0 || !strings.Contains(r.Stdout, "select") {
					t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tr := startAttach(t, tg.PID, "--timeout", "10s")
				for i := 0; i < 50; i++ {
					if got := c.ask(t, fmt.Sprintf("hello %d", i)); got != fmt.Sprintf("echo hello %d", i) {
						t.Fatalf("answer %q while traced", got)
					}
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
			})
		}
	}
}

// A thread stopped by lptrace inside epoll_wait comes back from it with
// EINTR, which the kernel never restarts: Python 3 waits again, Python
// 2.7's epoll.poll raises IOError. lptrace restarts the call itself where
// it had no timeout (and on 2.7): the program never sees an error, and
// keeps answering.
func TestRealEpollServer(t *testing.T) {
	for _, py := range pythons(t) {
		for _, timeout := range []string{"-", "0.2"} {
			name := py.Name + "/forever"
			if timeout != "-" {
				name = py.Name + "/timeout"
			}
			t.Run(name, func(t *testing.T) {
				tg := startProgram(t, py, "epoll_server.py", timeout)
				pid := strconv.Itoa(tg.PID)
				c := dial(t, tg.Port)
				state := func() string { return c.ask(t, "state") }
				fp := state()
				before := readOSState(tg.PID)
				for i := 0; i < 3; i++ {
					if r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
						t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
					}
				}
				if r := lptrace(t, "", "stack", "--timeout", "10s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "epoll_server.py") {
					t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tr := startAttach(t, tg.PID, "--timeout", "10s")
				if got := c.ask(t, "hello"); got != "echo hello" {
					t.Fatalf("answer %q while traced", got)
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
				if other := tg.Other(); len(other) > 0 {
					t.Errorf("the program printed %q", other)
				}
			})
		}
	}
}

// A gevent program (monkey-patched: threads, locks and sleeps are
// greenlets on the main OS thread). lptrace's timer thread is a real
// thread, not a greenlet whose signal mask would stay on the main thread:
// after a session the program's SIGTERM handler still runs (exit status
// 3), its main thread blocks no signal, and a second session works.
func TestRealGevent(t *testing.T) {
	for _, py := range pythonsWith(t, "gevent") {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "gevent_app.py")
			pid := strconv.Itoa(tg.PID)
			c := dial(t, tg.Port)
			state := func() string { return c.ask(t, "state") }
			fp := state()
			before := readOSState(tg.PID)
			for session := 0; session < 2; session++ {
				tr := startAttach(t, tg.PID)
				if got := c.ask(t, "hello"); got != "echo hello" {
					t.Fatalf("answer %q while traced", got)
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.waitCall(t, "green_step", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
			}
			if r := lptrace(t, "", "exec", pid, "counts[0] > 0"); r.Code != 0 || r.Stdout != "True\n" {
				t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			if r := lptrace(t, "", "stack", pid); r.Code != 0 || !strings.Contains(r.Stdout, "gevent") {
				t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			checkLeftAsItWas(t, tg.PID, before, fp, state)
			syscall.Kill(tg.PID, syscall.SIGTERM)
			if st := tg.exit(t, 10*time.Second); !st.Exited() || st.ExitStatus() != 3 {
				t.Errorf("after SIGTERM the program ended with %v, want its handler's exit status 3", st)
			}
		})
	}
}

// gunicorn with gevent workers serving a Flask application: a traced worker
// answers, its view shows in the trace, and after the session gunicorn's
// graceful shutdown still works (the worker's SIGTERM handler runs: it
// says "Worker exiting" rather than being killed at the end of the
// graceful timeout).
func TestRealGunicornGevent(t *testing.T) {
	for _, py := range pythonsWith(t, "gevent", "gunicorn", "flask") {
		t.Run(py.Name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			cmd := exec.Command(py.Path, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--graceful-timeout", "8",
				"-b", fmt.Sprintf("127.0.0.1:%d", port), "--chdir", programsDir, "flask_app:app")
			var log syncBuffer
			cmd.Stdout, cmd.Stderr = &log, &log
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-waited })
			get := func(path string) string {
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
				if err != nil {
					return "error: " + err.Error()
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return string(body)
			}
			for i := 0; get("/hello/start") != "hello start"; i++ {
				if i > 200 {
					t.Fatalf("gunicorn does not answer: %s", log.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			workers := strings.Fields(string(children))
			if len(workers) != 1 {
				t.Fatalf("workers: %v", workers)
			}
			worker, _ := strconv.Atoi(workers[0])
			before := readOSState(worker)
			tr := startAttach(t, worker)
			for i := 0; i < 20; i++ {
				if got := get(fmt.Sprintf("/hello/%d", i)); got != fmt.Sprintf("hello %d", i) {
					t.Fatalf("answer %q while traced", got)
				}
			}
			tr.waitCall(t, "greeting", 5*time.Second)
			tr.Stop(t, syscall.SIGINT)
			checkLeftAsItWas(t, worker, before, "", nil)
			if got := get("/hello/after"); got != "hello after" {
				t.Fatalf("answer %q after the session", got)
			}
			syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(20 * time.Second):
				t.Fatalf("gunicorn did not stop 20 s after SIGTERM: %s", log.String())
			}
			waited <- nil
			if out := log.String(); !strings.Contains(out, fmt.Sprintf("Worker exiting (pid: %d)", worker)) || strings.Contains(out, "SIGKILL") {
				t.Errorf("the worker did not shut down gracefully:\n%s", out)
			}
		})
	}
}

// An aiohttp application, idle in the event loop and then under a bounded
// load of requests: exec, stack and attach reach it at once, every request
// gets its answer while it is traced, the view's function is in the trace,
// and the program is as before afterwards.
func TestRealAiohttp(t *testing.T) {
	for _, py := range pythonsWith(t, "aiohttp") {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "aiohttp_app.py")
			client := &http.Client{Timeout: 10 * time.Second}
			get := func(path string) string {
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", tg.Port, path))
				if err != nil {
					return "error: " + err.Error()
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return string(body)
			}
			fp := get("/state")
			before := readOSState(tg.PID)
			pid := strconv.Itoa(tg.PID)
			if r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
				t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			if r := lptrace(t, "", "stack", "--timeout", "10s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "select") {
				t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			tr := startAttach(t, tg.PID, "--timeout", "10s")
			// Bounded load: 4 clients, a request each every 10 ms, 1 s.
			var wg sync.WaitGroup
			var bad sync.Map
			for c := 0; c < 4; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 100; i++ {
						name := fmt.Sprintf("c%d-%d", c, i)
						if got := get("/hello/" + name); got != "hello "+name {
							bad.Store(name, got)
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			wg.Wait()
			bad.Range(func(k, v any) bool {
				t.Errorf("request %v while traced: %v", k, v)
				return false
			})
			tr.waitCall(t, "greeting", 5*time.Second)
			tr.Stop(t, syscall.SIGINT)
			checkLeftAsItWas(t, tg.PID, before, fp, func() string { return get("/state") })
		})
	}
}
