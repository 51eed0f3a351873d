package service

import (
	"bytes"
	"errors"
	"testing"
)

func TestAsyncWriterKeepsOrder(t *testing.T) {
	var out bytes.Buffer
	a := newAsyncWriter(&out, 3, 7)
	var want bytes.Buffer
	for i := range 200 {
		chunk := bytes.Repeat([]byte{byte(i)}, i%23+1)
		want.Write(chunk)
		if n, err := a.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("got %d bytes, want %d in order", out.Len(), want.Len())
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

func TestAsyncWriterReportsWriteError(t *testing.T) {
	boom := errors.New("disk full")
	a := newAsyncWriter(&failAfter{n: 10, err: boom}, 2, 4)
	var werr error
	for range 100 {
		if _, werr = a.Write([]byte("abcd")); werr != nil {
			break
		}
	}
	if err := a.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}
	if !errors.Is(werr, boom) {
		t.Fatalf("Write never reported the error: %v", werr)
	}
}
