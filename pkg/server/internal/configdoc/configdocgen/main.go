// Command configdocgen writes pkg/server's configdoc_gen.go; run it with
// `go generate ./pkg/server`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/internal/configdoc"
)

func main() {
	// go generate runs in pkg/server.
	src, err := configdoc.Generate(filepath.Join("..", ".."), reflect.TypeOf(server.Config{}))
	if err == nil {
		err = os.WriteFile(configdoc.GeneratedFile, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdocgen:", err)
		os.Exit(1)
	}
}
