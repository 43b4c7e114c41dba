package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// The development CA.
const (
	// DevCACommonName is the subject CN of the development CA.
	DevCACommonName = "Mycorrizal development CA"
	// DevCACertFile and DevCAKeyFile are the development CA's file names
	// in DevConfig.Dir.
	DevCACertFile = "ca.pem"
	DevCAKeyFile  = "ca-key.pem"
	// DevCAValidity is the development CA's lifetime.
	DevCAValidity = 10 * 365 * 24 * time.Hour
)

// maxKeyFileSize bounds what DevCA reads from its key file.
const maxKeyFileSize = 1 << 20

// DevConfig configures DevCA.
type DevConfig struct {
	// Dir holds the development CA. Empty means the "mycorrizal" directory
	// in os.UserCacheDir (for example ~/.cache/mycorrizal on Linux).
	Dir string
	// NodeID is required: see Config.NodeID.
	NodeID ports.NodeID
	// Logger: see Config.Logger. DevCA logs a warning on it at every call.
	Logger *slog.Logger
	// Validity and RenewBefore of the minted leaves: see Config.
	Validity, RenewBefore time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DevCA returns a Source minting from the development CA, the
// zero-configuration default that lets a local cluster start without any
// certificate set-up. It is NOT for production: anyone who can read the
// key file can join the cluster as any node, and it logs a warning saying
// so, with the path, at every call.
//
// The CA (ECDSA P-256, valid ten years, CN DevCACommonName) is created on
// first use in cfg.Dir as ca.pem and ca-key.pem (key mode 0600; the
// directory, if DevCA creates it, 0700) and reused afterwards, so all the processes of one machine (one
// user) trust each other. Creation is safe when several processes or
// goroutines race: each file is written to a temporary file and published
// with a hard link, which fails if the file exists, so the first writer
// wins and the others load its files. The certificate is self-signed from
// whichever key was published, so the pair always matches.
//
// DevCA refuses a key file that is accessible by group or others (an error
// naming the path), a CA that has expired (delete both files to create a
// new one), and a certificate that does not match the key.
func DevCA(cfg DevConfig) (*Source, error) {
	if err := checkNodeID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("ca: DevConfig.NodeID: %w", err)
	}
	dir := cfg.Dir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("ca: development CA: no user cache directory (set DevConfig.Dir): %w: %w", err, ports.ErrInvalidConfig)
		}
		dir = filepath.Join(cache, "mycorrizal")
	}
	now := nowFunc(cfg.Now)
	a, created, err := loadOrCreateDevCA(dir, now())
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("development CA in use; not for production",
		"path", filepath.Join(dir, DevCACertFile), "key", filepath.Join(dir, DevCAKeyFile), "created", created)
	return NewFromAuthority(a, Config{
		NodeID:      cfg.NodeID,
		Validity:    cfg.Validity,
		RenewBefore: cfg.RenewBefore,
		Logger:      cfg.Logger,
		Now:         now,
	})
}

// loadOrCreateDevCA loads the development CA in dir, creating whichever of
// its files is missing. created reports whether this call published the
// key (a new CA).
func loadOrCreateDevCA(dir string, now time.Time) (a *Authority, created bool, err error) {
	keyPath := filepath.Join(dir, DevCAKeyFile)
	certPath := filepath.Join(dir, DevCACertFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("ca: development CA: %w: %w", err, ports.ErrInvalidConfig)
	}

	keyPEM, err := readPrivateFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, false, fmt.Errorf("ca: development CA: generate key: %w", gerr)
		}
		data, eerr := encodeKey(key)
		if eerr != nil {
			return nil, false, fmt.Errorf("ca: development CA: %w", eerr)
		}
		created, err = publishExclusive(keyPath, data, 0o600)
		if err != nil {
			return nil, false, err
		}
		keyPEM, err = readPrivateFile(keyPath) // ours or the winner's
	}
	if err != nil {
		return nil, false, err
	}

	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		signer, perr := parsePrivateKey(keyPEM)
		if perr != nil {
			return nil, false, fmt.Errorf("ca: development CA key %s: %w%s", keyPath, perr, deleteHint(dir))
		}
		data, serr := selfSignCA(signer, DevCACommonName, DevCAValidity, now)
		if serr != nil {
			return nil, false, serr
		}
		if _, err := publishExclusive(certPath, data, 0o644); err != nil {
			return nil, false, err
		}
		certPEM, err = os.ReadFile(certPath) // ours or the winner's
	}
	if err != nil {
		return nil, false, fmt.Errorf("ca: development CA: %w: %w", err, ports.ErrInvalidConfig)
	}

	a, err = parseAuthority(certPEM, keyPEM, certPath, keyPath, now)
	if err != nil {
		return nil, false, fmt.Errorf("%w%s", err, deleteHint(dir))
	}
	return a, created, nil
}

func deleteHint(dir string) string {
	return fmt.Sprintf(" (delete %s and %s in %s to create a new development CA)", DevCACertFile, DevCAKeyFile, dir)
}

// readPrivateFile reads a private key file, refusing one that is not a
// regular file or that group or others may access.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("ca: development CA key: %w: %w", err, ports.ErrInvalidConfig)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ca: development CA key: %w: %w", err, ports.ErrInvalidConfig)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ca: development CA key %s is not a regular file: %w", path, ports.ErrInvalidConfig)
	}
	// Windows reports no meaningful permission bits.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("ca: development CA key %s is accessible by group or others (mode %#o); restrict it with chmod 600: %w",
			path, perm, ports.ErrInvalidConfig)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize))
	if err != nil {
		return nil, fmt.Errorf("ca: development CA key: %w: %w", err, ports.ErrInvalidConfig)
	}
	return b, nil
}

// publishExclusive writes data to a temporary file beside path, then links
// it to path, which fails if path exists: the file appears complete or not
// at all, and of several racing writers exactly one wins. It reports
// whether this call won; losing is not an error.
func publishExclusive(path string, data []byte, perm fs.FileMode) (won bool, err error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("ca: development CA: write %s: %w: %w", path, err, ports.ErrInvalidConfig)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	switch err := os.Link(tmp, path); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		return fail(err)
	}
}
