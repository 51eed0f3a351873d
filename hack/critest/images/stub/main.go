// Command stub is every program of the critest images that busybox does not
// provide, in one static binary that acts by the name it is run as (its
// argv[0] base name, as busybox does):
//
//	pause   the pod sandbox's process: reaps children, exits 0 on SIGINT or SIGTERM
//	nginx   a web server standing in for nginx: GET / answers 200 with the
//	        nginx welcome page; writes its pid to -pid; runs as
//	        "nginx: master process ..." like nginx's master (critest looks for
//	        that text in /proc/1/cmdline, and for the pid with pidof nginx)
//	httpd   a web server standing in for Apache httpd: logs a line with
//	        "httpd" on start (critest looks for it in the container log)
//	nnp     prints "Effective uid: N" (installed setuid root, as the e2e
//	        nonewprivs image, to test no_new_privs)
//	pgrep   pgrep [-f] PATTERN: pids of the processes whose name (or, with
//	        -f, command line) matches; exit 1 when none
//	ipcs    ipcs [-m]: the System V shared memory segments, as util-linux
//
// pgrep and ipcs are the two applets critest runs that Debian's busybox
// lacks. Build it static: CGO_ENABLED=0 go build ./hack/critest/images/stub.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// masterPrefix starts the argv[0] nginx's master process gives itself.
const masterPrefix = "nginx: master process "

func main() {
	name := filepath.Base(os.Args[0])
	if strings.HasPrefix(os.Args[0], masterPrefix) {
		name = "nginx"
	}
	var err error
	switch name {
	case "pause":
		err = pause()
	case "nginx":
		err = nginx(os.Args[1:])
	case "httpd":
		err = httpd(os.Args[1:])
	case "nnp":
		_, err = fmt.Printf("Effective uid: %d\n", os.Geteuid())
	case "pgrep":
		var found bool
		found, err = pgrep(os.Args[1:])
		if err == nil && !found {
			os.Exit(1)
		}
	case "ipcs":
		err = ipcs(os.Args[1:])
	default:
		err = fmt.Errorf("run as pause, nginx, httpd, nnp, pgrep or ipcs (a link of that name), not %q", name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
}

// pause waits for SIGINT or SIGTERM, reaping the children it inherits as
// the pid namespace's init.
func pause() error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return nil
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return nil
}

const welcome = `<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>A stand-in for nginx in the CRI conformance images: this page means the
server answered.</p>
</body>
</html>
`

func nginx(args []string) error {
	fs := flag.NewFlagSet("nginx", flag.ContinueOnError)
	listen := fs.String("listen", ":80", "address to serve on")
	pidFile := fs.String("pid", "/var/run/nginx.pid", "file to write the pid to")
	fs.String("g", "", "nginx directives (accepted and ignored)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !strings.HasPrefix(os.Args[0], masterPrefix) {
		// Take nginx's master process title by re-executing under it; the
		// program is found by the name it was run as, so that the kernel
		// keeps "nginx" as the process name (pidof nginx).
		path, err := exec.LookPath(os.Args[0])
		if err != nil {
			return err
		}
		argv := append([]string{masterPrefix + strings.Join(os.Args, " ")}, args...)
		return syscall.Exec(path, argv, os.Environ())
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("nginx: serving on %s\n", l.Addr())
	return serve(l, welcome)
}

func httpd(args []string) error {
	fs := flag.NewFlagSet("httpd", flag.ContinueOnError)
	listen := fs.String("listen", ":80", "address to serve on")
	fs.Bool("DFOREGROUND", true, "accepted and ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "httpd: serving on %s\n", l.Addr())
	return serve(l, "<html><body><h1>It works!</h1></body></html>\n")
}

// serve answers every GET with page until SIGTERM, SIGINT or SIGQUIT.
func serve(l net.Listener, page string) error {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s %s %s\n", r.RemoteAddr, r.Method, r.URL)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(page))
	})}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		<-sigs
		_ = srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func pgrep(args []string) (bool, error) {
	fs := flag.NewFlagSet("pgrep", flag.ContinueOnError)
	full := fs.Bool("f", false, "match the whole command line")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if fs.NArg() != 1 {
		return false, errors.New("usage: pgrep [-f] PATTERN")
	}
	re, err := regexp.Compile(fs.Arg(0))
	if err != nil {
		return false, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		file := "comm"
		if *full {
			file = "cmdline"
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if err != nil {
			continue // gone since the listing
		}
		text := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if re.MatchString(text) {
			fmt.Println(pid)
			found = true
		}
	}
	return found, nil
}

// ipcs prints /proc/sysvipc/shm in util-linux's format.
func ipcs(args []string) error {
	if len(args) > 1 || (len(args) == 1 && args[0] != "-m") {
		return errors.New("usage: ipcs [-m] (only shared memory is listed)")
	}
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	col := map[string]int{}
	for i, h := range strings.Fields(lines[0]) {
		col[h] = i
	}
	fmt.Printf("\n------ Shared Memory Segments --------\n")
	fmt.Printf("%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n", "key", "shmid", "owner", "perms", "bytes", "nattch", "status")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < len(col) {
			continue
		}
		key, _ := strconv.ParseInt(f[col["key"]], 10, 64)
		perms, _ := strconv.ParseInt(f[col["perms"]], 10, 64)
		fmt.Printf("0x%08x %-10s %-10s %-10o %-10s %-10s\n", uint32(key), f[col["shmid"]], f[col["uid"]], perms&0o777, f[col["size"]], f[col["nattch"]])
	}
	fmt.Println()
	return nil
}
