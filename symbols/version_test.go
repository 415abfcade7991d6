package symbols

import (
	"testing"
)

func TestPythonVersion(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		path      string // overrides the module's path
		noVersion bool   // pretend there is no Py_Version symbol
		badAddr   bool   // Py_Version points at no file data
		want      Version
	}{
		{name: "Py_Version", file: fakeLib, want: Version{3, 12, 1}},
		{name: "Py_Version stripped", file: fakeStripped, want: Version{3, 12, 1}},
		{name: "Py_Version wins over the name", file: fakeLib, path: "/usr/lib/libpython3.9.so.1.0", want: Version{3, 12, 1}},
		{name: "read-only data", file: fakeLib, noVersion: true, want: Version{3, 12, 1}},
		{name: "read-only data, no name", file: fakeStripped, path: "/opt/app/libembedded.so", noVersion: true, want: Version{3, 12, 1}},
		{name: "Py_Version not in the file", file: fakeLib, badAddr: true, want: Version{3, 12, 1}},
		// Read-only data that disagrees with the file name is some other
		// string: the name is trusted.
		{name: "name", file: fakeLib, path: "/usr/lib/libpython3.11.so.1.0", noVersion: true, want: Version{3, 11, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := openFake(t, tt.file)
			if tt.path != "" {
				m.Path = tt.path
			}
			// Read .symtab now, or a lookup would bring Py_Version back.
			m.loadSymtab()
			if tt.noVersion {
				delete(m.syms, "Py_Version")
			}
			if tt.badAddr {
				bss, _ := m.Lookup("lptrace_fake_initialized")
				m.syms["Py_Version"] = bss
			}
			got, err := m.pythonVersion()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("pythonVersion() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNameToVersion(t *testing.T) {
	tests := []struct {
		path string
		want Version
		ok   bool
	}{
		{"libpython2.7.so.1.0", Version{2, 7, -1}, true},
		{"python3.11", Version{3, 11, -1}, true},
		{"libpython3.6m.so.1.0", Version{3, 6, -1}, true},
		{"/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0", Version{3, 12, -1}, true},
		{"/root/.pyenv/versions/3.13.0/bin/python3.13", Version{3, 13, -1}, true},
		{"/usr/bin/python3.13t", Version{3, 13, -1}, true},
		{"/usr/bin/python3.10-dbg", Version{3, 10, -1}, true},
		{"/usr/bin/python3", Version{}, false},
		{"/usr/bin/python", Version{}, false},
		{"/opt/python3.11/bin/app", Version{}, false}, // only the file name counts
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", Version{}, false},
		{"", Version{}, false},
	}
	for _, tt := range tests {
		got, ok := nameToVersion(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("nameToVersion(%q) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestVersion(t *testing.T) {
	strs := []struct {
		v    Version
		want string
	}{
		{Version{3, 12, 1}, "3.12.1"},
		{Version{2, 7, 18}, "2.7.18"},
		{Version{3, 11, -1}, "3.11"},
		{Version{3, 13, 0}, "3.13.0"},
	}
	for _, tt := range strs {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.v, got, tt.want)
		}
	}
	atLeast := []struct {
		v            Version
		major, minor int
		want         bool
	}{
		{Version{3, 12, 1}, 3, 12, true},
		{Version{3, 12, 1}, 3, 11, true},
		{Version{3, 12, 1}, 3, 13, false},
		{Version{3, 0, 0}, 2, 7, true},
		{Version{2, 7, 18}, 3, 0, false},
		{Version{4, 0, 0}, 3, 99, true},
	}
	for _, tt := range atLeast {
		if got := tt.v.AtLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v, want %v", tt.v, tt.major, tt.minor, got, tt.want)
		}
	}
}
