package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPoolSize is go-redis's connection pool size in the comparison, one
// connection per caller at the highest caller count.
const redisPoolSize = 64

// redisInstallTimeout bounds installing Debian's redis-server.
const redisInstallTimeout = 3 * time.Minute

// redisBinary is redis-server's path, found or installed once per process;
// skip says why there is none.
var redisBinary struct {
	once       sync.Once
	path, skip string
}

// redisServerPath returns the path of redis-server, installing Debian's
// package with apt-get when it is missing and this process runs as root.
// Without it, skip says why, for b.Skip.
func redisServerPath() (path, skip string) {
	redisBinary.once.Do(func() {
		redisBinary.path, redisBinary.skip = findOrInstallRedis()
	})
	return redisBinary.path, redisBinary.skip
}

func findOrInstallRedis() (string, string) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, ""
	}
	const want = "the Redis side needs redis-server (Debian: apt-get install redis-server)"
	if os.Geteuid() != 0 {
		return "", "redis-server not found and not running as root to install it: " + want
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", "redis-server not found and no apt-get to install it: " + want
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisInstallTimeout)
	defer cancel()
	aptGet := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-q", "-o", "DPkg::Lock::Timeout=60"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lastLine(out))
		}
		return nil
	}
	err := aptGet("install", "-y", "redis-server")
	if err != nil && ctx.Err() == nil {
		if uerr := aptGet("update"); uerr == nil {
			err = aptGet("install", "-y", "redis-server")
		}
	}
	if err != nil {
		return "", "redis-server not found and could not be installed (" + err.Error() + "): " + want
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", "redis-server still not found after apt-get install: " + want
	}
	return p, ""
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// startRedisCache starts redis-server on a free loopback port without
// persistence (stopped in b.Cleanup), connects go-redis with a pool of 64,
// preloads the keys, and returns GET and SET of them. Without redis-server
// the side's skip is set instead.
func startRedisCache(b *testing.B, keys []string, value []byte) remoteSide {
	b.Helper()
	path, skip := redisServerPath()
	if skip != "" {
		b.Log(skip)
		return remoteSide{skip: skip}
	}
	var (
		addr string
		err  error
	)
	for range 3 { // a free port can be taken between probing and binding
		if addr, err = startRedisServer(b, path); err == nil {
			break
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: redisPoolSize})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	set := func(ctx context.Context, i int) error {
		return rdb.Set(ctx, keys[i%len(keys)], value, 0).Err()
	}
	if err := preload(ctx, len(keys), set); err != nil {
		b.Fatal(err)
	}
	return remoteSide{
		get: func(ctx context.Context, i int) error {
			v, err := rdb.Get(ctx, keys[i%len(keys)]).Bytes()
			if err != nil {
				return err
			}
			if len(v) != len(value) {
				return errShortReply
			}
			return nil
		},
		set: set,
	}
}

// startRedisServer runs redis-server on a free loopback port with
// persistence off and returns its address once it answers PING. The
// server is stopped (SIGTERM, then SIGKILL after 5 s) in b.Cleanup.
func startRedisServer(b *testing.B, path string) (string, error) {
	b.Helper()
	port, err := freePort()
	if err != nil {
		return "", err
	}
	dir := b.TempDir()
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(path,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", dir, "--logfile", logFile, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	probe := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, MaxRetries: -1})
	defer probe.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := probe.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			return "", fmt.Errorf("redis-server exited on port %d: %s", port, lastLine(log))
		default:
		}
		if time.Now().After(deadline) {
			return "", errors.New("redis-server did not answer PING within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
