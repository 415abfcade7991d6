package proc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// realMaps is the start of /proc/PID/maps of a Python process, as the
// kernel writes it: paths padded to a column, anonymous mappings with a
// trailing space after the inode.
const realMaps = `55d4c9a00000-55d4c9a01000 r--p 00000000 fe:00 1311091                    /root/.pyenv/versions/3.12.1/bin/python3.12
55d4c9a01000-55d4c9a02000 r-xp 00001000 fe:00 1311091                    /root/.pyenv/versions/3.12.1/bin/python3.12
55d4cb2f4000-55d4cb3a1000 rw-p 00000000 00:00 0                          [heap]
7f9d787c9000-7f9d787eb000 rw-p 00000000 00:00 0 
7f9d7884e000-7f9d78874000 r--p 00000000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f9d78874000-7f9d789ca000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f9d78a31000-7f9d78a38000 r--s 00000000 fe:00 325737                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
7ffc8d2b4000-7ffc8d2d5000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func TestParseMaps(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Mapping
	}{
		{
			name: "empty",
			in:   "",
			want: nil,
		},
		{
			name: "blank lines",
			in:   "\n  \n\t\n",
			want: nil,
		},
		{
			name: "real",
			in:   realMaps,
			want: []Mapping{
				{0x55d4c9a00000, 0x55d4c9a01000, "r--p", 0, "fe:00", 1311091, "/root/.pyenv/versions/3.12.1/bin/python3.12"},
				{0x55d4c9a01000, 0x55d4c9a02000, "r-xp", 0x1000, "fe:00", 1311091, "/root/.pyenv/versions/3.12.1/bin/python3.12"},
				{0x55d4cb2f4000, 0x55d4cb3a1000, "rw-p", 0, "00:00", 0, "[heap]"},
				{0x7f9d787c9000, 0x7f9d787eb000, "rw-p", 0, "00:00", 0, ""},
				{0x7f9d7884e000, 0x7f9d78874000, "r--p", 0, "fe:00", 326269, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
				{0x7f9d78874000, 0x7f9d789ca000, "r-xp", 0x26000, "fe:00", 326269, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
				{0x7f9d78a31000, 0x7f9d78a38000, "r--s", 0, "fe:00", 325737, "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"},
				{0x7ffc8d2b4000, 0x7ffc8d2d5000, "rw-p", 0, "00:00", 0, "[stack]"},
				{0xffffffffff600000, 0xffffffffff601000, "--xp", 0, "00:00", 0, "[vsyscall]"},
			},
		},
		{
			name: "path with spaces",
			in:   "7f0000000000-7f0000001000 r-xp 00002000 08:01 42      /opt/my app/lib python  x.so\n",
			want: []Mapping{{0x7f0000000000, 0x7f0000001000, "r-xp", 0x2000, "08:01", 42, "/opt/my app/lib python  x.so"}},
		},
		{
			name: "deleted",
			in:   "7f0000000000-7f0000001000 r-xp 00000000 08:01 42 /usr/lib/libpython3.12.so.1.0 (deleted)\n",
			want: []Mapping{{0x7f0000000000, 0x7f0000001000, "r-xp", 0, "08:01", 42, "/usr/lib/libpython3.12.so.1.0 (deleted)"}},
		},
		{
			name: "no path, no trailing space, no final newline",
			in:   "1000-2000 rw-p 00000000 00:00 0",
			want: []Mapping{{0x1000, 0x2000, "rw-p", 0, "00:00", 0, ""}},
		},
		{
			name: "CRLF line ending",
			in:   "1000-2000 rw-p 00000000 00:00 0 [stack]\r\n",
			want: []Mapping{{0x1000, 0x2000, "rw-p", 0, "00:00", 0, "[stack]"}},
		},
		{
			name: "empty range",
			in:   "1000-1000 ---p 00000000 00:00 0\n",
			want: []Mapping{{0x1000, 0x1000, "---p", 0, "00:00", 0, ""}},
		},
		{
			name: "leading and repeated spaces",
			in:   "  1000-2000   r-xp  00001000   08:01   7    /bin/x\n",
			want: []Mapping{{0x1000, 0x2000, "r-xp", 0x1000, "08:01", 7, "/bin/x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMaps(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseMaps: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMaps:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMapsMalformed(t *testing.T) {
	bad := []string{
		"garbage",
		"-",
		"1000-2000",
		"1000-2000 r-xp",
		"1000-2000 r-xp 00000000 08:01",
		"1000-2000 r-xp 00000000 08:01 ",
		"10002000 r-xp 00000000 08:01 1 /x",
		"-2000 r-xp 00000000 08:01 1 /x",
		"1000- r-xp 00000000 08:01 1 /x",
		"zz-2000 r-xp 00000000 08:01 1 /x",
		"1000-zz r-xp 00000000 08:01 1 /x",
		"1000-2000-3000 r-xp 00000000 08:01 1 /x",
		"2000-1000 r-xp 00000000 08:01 1 /x", // end before start
		"10000000000000000-10000000000000001 r-xp 00000000 08:01 1 /x",
		"1000-2000 r-x 00000000 08:01 1 /x",
		"1000-2000 r-xpp 00000000 08:01 1 /x",
		"1000-2000 r-xp 0000zz00 08:01 1 /x",
		"1000-2000 r-xp -1 08:01 1 /x",
		"1000-2000 r-xp 00000000 08:01 abc /x",
		"1000-2000 r-xp 00000000 08:01 -1 /x",
		"1000-2000\tr-xp\t00000000\t08:01\t1\t/x",
		"\x00\x00\x00\x00\x00",
	}
	for _, line := range bad {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			got, err := ParseMaps(strings.NewReader(line + "\n"))
			if err == nil {
				t.Fatalf("ParseMaps(%q) = %+v, want an error", line, got)
			}
			if got != nil {
				t.Errorf("ParseMaps(%q) returned %+v with the error", line, got)
			}
			// After a valid line, the error names the bad line.
			_, err = ParseMaps(strings.NewReader("1000-2000 r-xp 00000000 08:01 1 /x\n" + line + "\n"))
			if err == nil || !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error for a bad second line = %v, want one that names line 2", err)
			}
		})
	}
}

func TestParseMapsLongLine(t *testing.T) {
	// Longer than the scanner's buffer: an error, not a panic or a
	// truncated path.
	line := "1000-2000 r-xp 00000000 08:01 1 /" + strings.Repeat("a", 2<<20) + "\n"
	if _, err := ParseMaps(strings.NewReader(line)); err == nil {
		t.Error("ParseMaps accepted a 2 MB line")
	}
}

func TestMappingExecFileBacked(t *testing.T) {
	tests := []struct {
		m          Mapping
		exec, file bool
	}{
		{Mapping{Perms: "r-xp", Inode: 5, Path: "/usr/lib/libc.so.6"}, true, true},
		{Mapping{Perms: "r--p", Inode: 5, Path: "/usr/lib/libc.so.6"}, false, true},
		{Mapping{Perms: "--xp", Path: "[vsyscall]"}, true, false},
		{Mapping{Perms: "rw-p", Path: "[stack]"}, false, false},
		{Mapping{Perms: "rw-p"}, false, false},
		{Mapping{Perms: "rwxp", Inode: 0, Path: "/memfd:jit (deleted)"}, true, false},
		{Mapping{Perms: "r-xp", Inode: 9, Path: "/memfd:jit (deleted)"}, true, true},
		{Mapping{Perms: "r-"}, false, false},
		{Mapping{}, false, false},
	}
	for _, tt := range tests {
		if got := tt.m.Exec(); got != tt.exec {
			t.Errorf("%+v.Exec() = %v, want %v", tt.m, got, tt.exec)
		}
		if got := tt.m.FileBacked(); got != tt.file {
			t.Errorf("%+v.FileBacked() = %v, want %v", tt.m, got, tt.file)
		}
	}
}

func TestOpenPath(t *testing.T) {
	pid := os.Getpid()
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	m := Mapping{Start: 0x1000, End: 0x2000, Path: exe}
	if got, want := m.OpenPath(pid), "/proc/"+strconv.Itoa(pid)+"/root"+exe; got != want {
		t.Errorf("OpenPath of an existing file = %q, want %q", got, want)
	}
	mapFiles := "/proc/" + strconv.Itoa(pid) + "/map_files/1000-2000"
	m.Path = exe + " (deleted)"
	if got := m.OpenPath(pid); got != mapFiles {
		t.Errorf("OpenPath of a deleted file = %q, want %q", got, mapFiles)
	}
	m.Path = "/nonexistent/lptrace/lib.so"
	if got := m.OpenPath(pid); got != mapFiles {
		t.Errorf("OpenPath of a replaced file = %q, want %q", got, mapFiles)
	}
}

func TestParseSyscall(t *testing.T) {
	tests := []struct {
		in   string
		want Syscall
	}{
		{"running\n", Syscall{Running: true, Nr: -1}},
		{"running", Syscall{Running: true, Nr: -1}},
		{"-1 0x7ffd8b1c8a38 0x7f3c2d4a1b3d\n", Syscall{Nr: -1, SP: 0x7ffd8b1c8a38, PC: 0x7f3c2d4a1b3d}},
		{"-1 7ffd8b1c8a38 7f3c2d4a1b3d", Syscall{Nr: -1, SP: 0x7ffd8b1c8a38, PC: 0x7f3c2d4a1b3d}},
		{"-1\n", Syscall{Nr: -1}},
		{
			"202 0x55d1c0a0 0x80 0x0 0x0 0x0 0x0 0x7ffd8b1c8a38 0x7f3c2d4a1b3d\n",
			Syscall{Nr: 202, Args: [6]uint64{0x55d1c0a0, 0x80}, SP: 0x7ffd8b1c8a38, PC: 0x7f3c2d4a1b3d},
		},
		{
			"270 0xfb 0x7ffe06ecc970 0x0 0x0 0x7ffe06ecc880 0x7ffe06ecc890 0x7ffe06ecc850 0x7f9c18ef7aec",
			Syscall{Nr: 270, Args: [6]uint64{0xfb, 0x7ffe06ecc970, 0, 0, 0x7ffe06ecc880, 0x7ffe06ecc890}, SP: 0x7ffe06ecc850, PC: 0x7f9c18ef7aec},
		},
		{
			"0 0xffffffffffffffff 0x1 0x2 0x3 0x4 0x5 0x6 0x7",
			Syscall{Nr: 0, Args: [6]uint64{0xffffffffffffffff, 1, 2, 3, 4, 5}, SP: 6, PC: 7},
		},
	}
	for _, tt := range tests {
		got, err := ParseSyscall(tt.in)
		if err != nil {
			t.Errorf("ParseSyscall(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSyscall(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseSyscallBad(t *testing.T) {
	bad := []string{
		"",
		"\n",
		"   ",
		"garbage",
		"Running",
		"0x10 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
		"1.5 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
		"99999999999999999999 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
		"202",
		"202 0x1 0x2 0x3 0x4 0x5 0x6 0x7",
		"\x00\xff",
	}
	for _, in := range bad {
		if got, err := ParseSyscall(in); err == nil {
			t.Errorf("ParseSyscall(%q) = %+v, want an error", in, got)
		}
	}
}

// statusText is /proc/PID/status of a traced, stopped Python process with
// a shadow stack.
const statusText = `Name:	python3.12
Umask:	0022
State:	t (tracing stop)
Tgid:	4321
Ngid:	0
Pid:	4321
PPid:	1200
TracerPid:	4400
Uid:	1000	1001	1002	1003
Gid:	100	101	102	103
FDSize:	64
Groups:	100 27 
NStgid:	4321
NSpid:	4321
VmPeak:	   27744 kB
VmRSS:	   10164 kB
Threads:	3
SigQ:	0/63413
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000010002
SigIgn:	0000000001001000
SigCgt:	0000000180000002
CapInh:	0000000000000000
CapEff:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
x86_Thread_features:	shstk wrss
x86_Thread_features_locked:	shstk
Cpus_allowed_list:	0-7
voluntary_ctxt_switches:	22
nonvoluntary_ctxt_switches:	1
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Status
	}{
		{
			name: "real",
			in:   statusText,
			want: Status{
				Name:      "python3.12",
				State:     't',
				Tgid:      4321,
				PPid:      1200,
				TracerPid: 4400,
				UID:       [4]int{1000, 1001, 1002, 1003},
				GID:       [4]int{100, 101, 102, 103},
				Threads:   3,
				SigBlk:    0x10002,
				SigIgn:    0x1001000,
				SigCgt:    0x180000002,
				Features:  "shstk wrss",
			},
		},
		{name: "empty", in: "", want: Status{}},
		{name: "garbage", in: "\x00\xff\n:::\nno colon here\n", want: Status{}},
		{
			name: "no features",
			in:   "Name:\tsleep\nState:\tS (sleeping)\nx86_Thread_features:\t\nx86_Thread_features_locked:\t\n",
			want: Status{Name: "sleep", State: 'S'},
		},
		{
			name: "name with colon and spaces",
			in:   "Name:\tmy prog: worker\n",
			want: Status{Name: "my prog: worker"},
		},
		{
			name: "bad numbers are zero",
			in:   "Tgid:\tabc\nTracerPid:\t\nUid:\tx 5\nSigBlk:\tnothex\nThreads:\t-\n",
			want: Status{UID: [4]int{0, 5}},
		},
		{
			name: "extra and missing id fields",
			in:   "Uid:\t1 2 3 4 5 6\nGid:\t7\n",
			want: Status{UID: [4]int{1, 2, 3, 4}, GID: [4]int{7}},
		},
		{
			name: "empty state",
			in:   "State:\t\n",
			want: Status{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseStatus([]byte(tt.in))
			if *got != tt.want {
				t.Errorf("ParseStatus:\ngot  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// TestSelf reads this test process's own /proc files.
func TestSelf(t *testing.T) {
	pid := os.Getpid()
	st, err := ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tgid != pid || st.PPid != os.Getppid() || st.Threads < 1 || st.UID[1] != os.Geteuid() {
		t.Errorf("ReadStatus(self) = %+v; pid %d, ppid %d, euid %d", st, pid, os.Getppid(), os.Geteuid())
	}
	tids, err := Threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) == 0 || tids[0] != pid {
		t.Errorf("Threads(self) = %v, want the main thread %d first", tids, pid)
	}
	for i := 2; i < len(tids); i++ {
		if tids[i-1] >= tids[i] {
			t.Errorf("Threads(self) = %v: not sorted after the main thread", tids)
		}
	}
	if _, err := ReadTaskStatus(pid, tids[0]); err != nil {
		t.Errorf("ReadTaskStatus(self): %v", err)
	}
	maps, err := ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	var sawExe bool
	for _, m := range maps {
		if m.Path == exe && m.Exec() && m.FileBacked() {
			sawExe = true
		}
	}
	if !sawExe {
		t.Errorf("ReadMaps(self) has no executable mapping of %s", exe)
	}
	if IsKernelThread(pid) {
		t.Error("IsKernelThread(self) = true")
	}
}

func TestNoProcess(t *testing.T) {
	const pid = 1 << 30 // above the kernel's PID_MAX_LIMIT
	if _, err := ReadStatus(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadStatus: %v, want ErrNoProcess", err)
	}
	if _, err := ReadTaskStatus(pid, pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadTaskStatus: %v, want ErrNoProcess", err)
	}
	if _, err := Threads(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Threads: %v, want ErrNoProcess", err)
	}
	if _, err := ReadMaps(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadMaps: %v, want ErrNoProcess", err)
	}
	if _, err := ReadSyscall(pid, pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadSyscall: %v, want ErrNoProcess", err)
	}
	if IsKernelThread(pid) || StackLimit(pid) != 0 || ReadWchan(pid, pid) != "" {
		t.Error("IsKernelThread, StackLimit or ReadWchan found a process that does not exist")
	}
}

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Error("Alive(self) = false")
	}
	if Alive(1 << 30) {
		t.Error("Alive of a PID that cannot exist = true")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	// A command name with ") Z (" in it: /proc/PID/stat puts it in
	// parentheses, before the state.
	odd := filepath.Join(t.TempDir(), "x) Z (y")
	if err := os.Symlink(sleep, odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if !Alive(cmd.Process.Pid) {
		t.Errorf("Alive(%q) = false", odd)
	}

	// Exited but not yet waited for: a zombie.
	cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := ReadStatus(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed process still in state %c", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(cmd.Process.Pid) {
		t.Error("Alive(zombie) = true")
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add(realMaps)
	f.Add("7f0000000000-7f0000001000 r-xp 00000000 08:01 42 /usr/lib/libpython3.12.so.1.0 (deleted)\n")
	f.Add("1000-2000 rw-p 00000000 00:00 0 \n\n1000-2000 r-xp 1000 08:01 1 /a b\r\n")
	f.Add("2000-1000 r-xp 00000000 08:01 1 /x")
	f.Add("1000-2000 r-xp 00000000 08:01")
	f.Fuzz(func(t *testing.T, in string) {
		maps, err := ParseMaps(strings.NewReader(in))
		if err != nil {
			return
		}
		// One mapping per non-blank line (bufio.ScanLines drops a final \r).
		lines := 0
		for _, l := range strings.Split(in, "\n") {
			if strings.TrimSpace(strings.TrimSuffix(l, "\r")) != "" {
				lines++
			}
		}
		if len(maps) != lines {
			t.Fatalf("%d mappings from %d non-blank lines", len(maps), lines)
		}
		for _, m := range maps {
			if m.Start > m.End {
				t.Fatalf("mapping %+v: start after end", m)
			}
			if len(m.Perms) != 4 {
				t.Fatalf("mapping %+v: permissions are not 4 bytes", m)
			}
			if strings.ContainsRune(m.Dev, ' ') || strings.HasPrefix(m.Path, " ") || strings.Contains(m.Path, "\n") {
				t.Fatalf("mapping %+v: field boundaries wrong", m)
			}
			_ = m.Exec()
			_ = m.FileBacked()
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	f.Add("running\n")
	f.Add("-1 0x7ffd8b1c8a38 0x7f3c2d4a1b3d\n")
	f.Add("202 0x55d1c0a0 0x80 0x0 0x0 0x0 0x0 0x7ffd8b1c8a38 0x7f3c2d4a1b3d\n")
	f.Add("202 0x1")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := ParseSyscall(in)
		if err != nil {
			if sc != (Syscall{}) {
				t.Fatalf("ParseSyscall returned %+v with the error %v", sc, err)
			}
			return
		}
		f := strings.Fields(in)
		if len(f) == 0 {
			t.Fatalf("ParseSyscall(%q) accepted an empty file", in)
		}
		if sc.Running {
			if f[0] != "running" || sc.Nr != -1 {
				t.Fatalf("ParseSyscall(%q) = %+v", in, sc)
			}
			return
		}
		if nr, err := strconv.Atoi(f[0]); err != nil || nr != sc.Nr {
			t.Fatalf("ParseSyscall(%q) = %+v: syscall number is not the first field", in, sc)
		}
		if sc.Nr != -1 && len(f) < 9 {
			t.Fatalf("ParseSyscall(%q) accepted a short line", in)
		}
	})
}

// StartTime is field 22 of the stat line, whatever the command name holds.
func TestStartTime(t *testing.T) {
	stat := []byte("1234 (a) b (c)) S 1 1234 1234 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 100000 200 18446744073709551615")
	if f := parseStatFields(stat); len(f) < 20 || f[19] != "987654" {
		t.Errorf("parseStatFields: %q", f)
	}
	if s := StartTime(os.Getpid()); s == "" || s == "0" {
		t.Errorf("StartTime(self) = %q", s)
	}
	if s := StartTime(1 << 30); s != "" {
		t.Errorf("StartTime of no process = %q", s)
	}
}
