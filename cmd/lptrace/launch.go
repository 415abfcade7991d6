package main

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall" // os/exec takes its Credential type; x/sys/unix has none

	"github.com/lptrace/lptrace/launch"
	"github.com/urfave/cli/v2"
)

// launchMode tells whether the command line gave a program to start after
// `--` (lptrace [options] -- python3 app.py).
func launchMode(c *cli.Context) bool {
	v, _ := c.App.Metadata["launch"].(bool)
	return v
}

// launchOptions reads strace's -E (VAR=VAL sets, VAR removes) and -u USER,
// which apply to a launched program only.
func launchOptions(c *cli.Context, launching bool) (launch.Options, error) {
	var o launch.Options
	env, name := c.StringSlice("E"), c.String("u")
	if !launching {
		if len(env) > 0 || name != "" {
			return o, usagef("-E and -u apply to a program lptrace starts (lptrace [options] -- python3 app.py)")
		}
		return o, nil
	}
	if len(env) > 0 {
		vars := map[string]string{}
		var order []string
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if _, seen := vars[k]; !seen {
				order = append(order, k)
			}
			vars[k] = v
		}
		for _, e := range env {
			k, v, set := strings.Cut(e, "=")
			if k == "" {
				return o, usagef("-E %q: give VAR=VALUE, or VAR to remove it", e)
			}
			if _, seen := vars[k]; !seen && set {
				order = append(order, k)
			}
			if set {
				vars[k] = v
			} else {
				delete(vars, k)
			}
		}
		o.Env = []string{}
		for _, k := range order {
			if v, ok := vars[k]; ok {
				o.Env = append(o.Env, k+"="+v)
			}
		}
	}
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			if id, aerr := strconv.Atoi(name); aerr == nil {
				u, err = user.LookupId(strconv.Itoa(id))
			}
		}
		if err != nil {
			return o, usagef("-u %s: no such user", name)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					cred.Groups = append(cred.Groups, uint32(n))
				}
			}
		}
		o.User = cred
	}
	return o, nil
}
