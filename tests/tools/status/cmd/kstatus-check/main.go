// Command kstatus-check prints kstatus's verdict on each object of a YAML or JSON stream read
// from stdin: "<kind>/<name>\t<status>\t<message>", one line per object — exactly what Flux's
// health checks and cli-utils' status poller conclude from the same object.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	decoder := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	for {
		var raw json.RawMessage
		err := decoder.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "decode:", err)
			os.Exit(2)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// Through the unstructured JSON scheme, as a client reads objects: integers stay int64.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "decode:", err)
			os.Exit(2)
		}
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compute:", err)
			os.Exit(2)
		}
		fmt.Printf("%s/%s\t%s\t%s\n", u.GetKind(), u.GetName(), result.Status, result.Message)
	}
}
