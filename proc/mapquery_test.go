package proc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A process whose mappings stay put: a copy of sleep under a name with a
// space, deleted once it runs (the kernel then adds " (deleted)").
func sleeper(t *testing.T) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "my sleep")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Mapped once the loader is done: the C library is there.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		maps, _ := ReadMaps(cmd.Process.Pid)
		libc := false
		for _, m := range maps {
			libc = libc || filepath.Base(m.Path) != "my sleep" && m.Exec() && m.FileBacked()
		}
		if libc || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	os.Remove(bin)
	return cmd.Process.Pid
}

// sleeperMaps opens a sleeper's mappings and reads their text.
func sleeperMaps(t *testing.T) (*Maps, []Mapping) {
	t.Helper()
	pid := sleeper(t)
	q, err := OpenMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	text, err := ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	return q, text
}

// Every answer of the queries equals the text's line: the mapping at each
// one's first and last byte, and the list of file mappings.
func TestMapsQueryMatchesText(t *testing.T) {
	q, text := sleeperMaps(t)
	if !q.Queries() {
		t.Skip("this kernel has no PROCMAP_QUERY (Linux 6.11+): the text is used, see TestMapsText")
	}
	var files []Mapping
	deleted := false
	for _, want := range text {
		if want.Path == "[vsyscall]" {
			continue // the kernel's gate page, in no process's list of mappings
		}
		for _, addr := range []uint64{want.Start, want.End - 1} {
			got, ok, err := q.At(addr)
			if err != nil || !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("At(%#x) = %+v, %v, %v; the text says %+v", addr, got, ok, err, want)
			}
		}
		if want.Inode != 0 {
			files = append(files, want)
		}
		deleted = deleted || filepath.Base(want.Path) == "my sleep (deleted)"
	}
	if !deleted {
		t.Errorf("the deleted program is not in the text: %+v", text)
	}
	got, err := q.Files()
	if err != nil || !reflect.DeepEqual(got, files) {
		t.Errorf("Files() = %+v, %v\nthe text's file mappings: %+v", got, err, files)
	}
	// Between two mappings, and past the last: none.
	for i := 1; i < len(text); i++ {
		if text[i-1].End < text[i].Start {
			if m, ok, err := q.At(text[i-1].End); ok || err != nil {
				t.Errorf("At(%#x), in a hole: %+v, %v", text[i-1].End, m, err)
			}
			break
		}
	}
	if m, ok, err := q.At(^uint64(0)); ok || err != nil {
		t.Errorf("At(top of the address space): %+v, %v", m, err)
	}
}

// Without the ioctl (kernels before 6.11) the same answers come from the
// text.
func TestMapsText(t *testing.T) {
	q, text := sleeperMaps(t)
	q.query = false
	n := 0
	for _, want := range text {
		if got, ok, err := q.At(want.End - 1); !ok || err != nil || got != want {
			t.Errorf("At(%#x) = %+v, %v, %v; want %+v", want.End-1, got, ok, err, want)
		}
		if want.Inode != 0 {
			n++
		}
	}
	if files, err := q.Files(); err != nil || len(files) != n || n == 0 {
		t.Errorf("Files() = %d mappings, %v; the text has %d", len(files), err, n)
	}
}

// A process that is gone: an error that says so, never a wrong answer.
func TestMapsGone(t *testing.T) {
	if _, err := OpenMaps(1 << 30); !errors.Is(err, ErrNoProcess) {
		t.Errorf("OpenMaps of no process: %v, want ErrNoProcess", err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	q, err := OpenMaps(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	text, _ := ReadMaps(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if len(text) == 0 {
		t.Fatal("no mappings read")
	}
	if m, ok, err := q.At(text[0].Start); ok {
		t.Errorf("At of an exited process: %+v, %v", m, err)
	}
	if files, err := q.Files(); len(files) != 0 || err == nil {
		t.Errorf("Files of an exited process: %d mappings, %v", len(files), err)
	}
}

// A mapped file whose path is longer than PATH_MAX: the kernel will not
// name it in an answer (ENAMETOOLONG), the text does; the text serves.
func TestMapsLongPath(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	prog := `import mmap, os, sys, time
os.chdir(sys.argv[1])
for _ in range(20):
    os.mkdir('d' * 250)
    os.chdir('d' * 250)
with open('f', 'wb') as f:
    f.write(b'x' * 4096)
f = open('f', 'rb')
m = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)
sys.stdout.write('ready\n')
sys.stdout.flush()
time.sleep(30)
`
	cmd := exec.Command(py, "-c", prog, t.TempDir())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if _, err := out.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	q, err := OpenMaps(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	text, err := ReadMaps(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var long Mapping
	for _, m := range text {
		if len(m.Path) > 4096 {
			long = m
		}
	}
	if long.Path == "" {
		t.Fatal("no mapping with a long path in the text")
	}
	got, ok, err := q.At(long.Start)
	if !ok || err != nil || got != long {
		t.Errorf("At(%#x) = %.80v..., %v, %v", long.Start, got, ok, err)
	}
	files, err := q.Files()
	found := false
	for _, m := range files {
		found = found || m == long
	}
	if err != nil || !found {
		t.Errorf("Files() = %d mappings, %v; the long one found: %v", len(files), err, found)
	}
}
