package gob_test

import (
	"bytes"
	stdgob "encoding/gob"
	"errors"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mycorrizal/mycorrizal/adapters/codec/gob"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/codectest"
)

// Rec is a record with most kinds gob handles, and no interface.
type Rec struct {
	Name  string
	Tags  []string
	Attrs map[string]int
	Next  *Rec
	Arr   [3]uint16
	Raw   []byte
	F     float32
	C     complex64
	OK    bool
	When  time.Time // BinaryMarshaler
	Big   *big.Int  // GobEncoder
	Embedded
}

// Embedded is embedded in Rec.
type Embedded struct{ Level int8 }

// Env carries interface values.
type Env struct {
	Kind    string
	Payload any
	List    []any
	ByName  map[string]any
}

// Leaf and Inner are registered for interface values.
type Leaf struct{ X int }

type Inner struct {
	B any
	Y int
}

// Opaque has no exported field: gob cannot encode it.
type Opaque struct{ x int }

func init() {
	stdgob.Register(Leaf{})
	stdgob.Register(Inner{})
	stdgob.Register(map[string]int{})
	stdgob.Register([]string{})
}

func sampleRec() Rec {
	return Rec{
		Name:     "root",
		Tags:     []string{"a", "b"},
		Attrs:    map[string]int{"x": 1, "y": -2},
		Next:     &Rec{Name: "child", Arr: [3]uint16{1, 2, 3}, Big: big.NewInt(7)},
		Arr:      [3]uint16{7, 8, 9},
		Raw:      []byte{0, 1, 2, 255},
		F:        1.5,
		C:        complex(1, -1),
		OK:       true,
		When:     time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Big:      new(big.Int).Lsh(big.NewInt(1), 100),
		Embedded: Embedded{Level: -3},
	}
}

func sampleEnv() Env {
	return Env{
		Kind:    "nested",
		Payload: Inner{B: Leaf{X: 7}, Y: 5}, // a new type nested in a new type
		List:    []any{Leaf{X: 1}, nil, map[string]int{"k": 2}, []string{"s"}},
		ByName:  map[string]any{"a": Leaf{X: 2}, "b": Inner{B: Leaf{X: 3}}},
	}
}

// equalRec compares the fields gob keeps (time by instant).
func equalRec(want, got any) bool {
	w, g := want.(Rec), got.(Rec)
	if !w.When.Equal(g.When) || (w.Big == nil) != (g.Big == nil) || (w.Big != nil && w.Big.Cmp(g.Big) != 0) {
		return false
	}
	w.When, g.When, w.Big, g.Big = time.Time{}, time.Time{}, nil, nil
	if w.Next != nil && g.Next != nil {
		if !equalRec(*w.Next, *g.Next) {
			return false
		}
		w.Next, g.Next = nil, nil
	}
	return reflect.DeepEqual(w, g)
}

func TestConformance(t *testing.T) {
	codectest.Run(t, gob.New(),
		codectest.Case{Name: "int", Value: -42, New: func() any { return new(int) }},
		codectest.Case{Name: "uint64", Value: uint64(1) << 63, New: func() any { return new(uint64) }},
		codectest.Case{Name: "string", Value: "héllo", New: func() any { return new(string) }},
		codectest.Case{Name: "bytes", Value: []byte{1, 2, 3}, New: func() any { return new([]byte) }},
		codectest.Case{Name: "float", Value: 3.25, New: func() any { return new(float64) }},
		codectest.Case{Name: "bool", Value: true, New: func() any { return new(bool) }},
		codectest.Case{Name: "map", Value: map[string][]int{"a": {1}, "b": {2, 3}}, New: func() any { return new(map[string][]int) }},
		codectest.Case{Name: "slice of structs", Value: []Leaf{{1}, {2}}, New: func() any { return new([]Leaf) }},
		codectest.Case{Name: "record", Value: sampleRec(), New: func() any { return new(Rec) }, Equal: equalRec},
		codectest.Case{Name: "interfaces", Value: sampleEnv(), New: func() any { return new(Env) }},
		codectest.Case{Name: "big.Int", Value: big.NewInt(-99), New: func() any { return new(*big.Int) },
			Equal: func(w, g any) bool { return w.(*big.Int).Cmp(g.(*big.Int)) == 0 }},
		codectest.Case{Name: "chan", Value: make(chan int), New: func() any { return new(chan int) }, Unsupported: true},
		codectest.Case{Name: "func", Value: func() {}, Unsupported: true},
		codectest.Case{Name: "nil", Value: nil, Unsupported: true},
		codectest.Case{Name: "no exported fields", Value: Opaque{1}, Unsupported: true},
		codectest.Case{Name: "unregistered type in interface", Value: Env{Payload: struct{ Z int }{1}}, Unsupported: true},
	)
}

// TestEveryEncodingValidates round-trips generated records: the validator
// must accept everything encoding/gob produces.
func TestEveryEncodingValidates(t *testing.T) {
	c := gob.New()
	leaf := rapid.Custom(func(t *rapid.T) Leaf { return Leaf{X: rapid.Int().Draw(t, "x")} })
	var recGen func(depth int) *rapid.Generator[Rec]
	recGen = func(depth int) *rapid.Generator[Rec] {
		return rapid.Custom(func(t *rapid.T) Rec {
			r := Rec{
				Name:  rapid.String().Draw(t, "name"),
				Tags:  rapid.SliceOfN(rapid.String(), 1, 5).Draw(t, "tags"),
				Attrs: rapid.MapOfN(rapid.String(), rapid.Int(), 1, 5).Draw(t, "attrs"),
				Raw:   rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, "raw"),
				F:     rapid.Float32().Draw(t, "f"),
				OK:    rapid.Bool().Draw(t, "ok"),
			}
			if r.F != r.F { // NaN never compares equal
				r.F = 0
			}
			if depth > 0 && rapid.Bool().Draw(t, "next") {
				next := recGen(depth-1).Draw(t, "child")
				r.Next = &next
			}
			return r
		})
	}
	rapid.Check(t, func(rt *rapid.T) {
		rec := recGen(4).Draw(rt, "rec")
		data, err := c.Marshal(rec)
		if err != nil {
			rt.Fatal(err)
		}
		var got Rec
		if err := c.Unmarshal(data, &got); err != nil {
			rt.Fatalf("Unmarshal of a valid encoding: %v", err)
		}
		if !equalRec(rec, got) {
			rt.Fatalf("round trip changed %+v into %+v", rec, got)
		}

		env := Env{
			Kind:    rapid.String().Draw(rt, "kind"),
			Payload: Inner{B: leaf.Draw(rt, "leaf"), Y: 1},
			List:    []any{leaf.Draw(rt, "l1"), nil, Inner{B: nil, Y: 2}},
			ByName:  map[string]any{"x": leaf.Draw(rt, "l2")},
		}
		data, err = c.Marshal(env)
		if err != nil {
			rt.Fatal(err)
		}
		var gotEnv Env
		if err := c.Unmarshal(data, &gotEnv); err != nil {
			rt.Fatalf("Unmarshal of a valid encoding: %v", err)
		}
		if !reflect.DeepEqual(env, gotEnv) {
			rt.Fatalf("round trip changed %+v into %+v", env, gotEnv)
		}
	})
}

// TestDecodesIntoAnOlderVersionOfAType covers version skew between nodes:
// fields the receiver lacks, including interface-typed ones, are skipped.
func TestDecodesIntoAnOlderVersionOfAType(t *testing.T) {
	type V2 struct {
		Name  string
		Extra any
		More  map[string]int
		N     int
	}
	type V1 struct {
		Name string
		N    int
	}
	c := gob.New()
	data, err := c.Marshal(V2{Name: "n", Extra: Leaf{X: 1}, More: map[string]int{"a": 1}, N: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got V1
	if err := c.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got != (V1{Name: "n", N: 3}) {
		t.Errorf("got %+v", got)
	}
}

// mapBomb returns a gob stream of a map[string]int value that claims count
// entries but holds one: a few dozen bytes for count 1<<28. encoding/gob up
// to at least Go 1.26.8 pre-allocates the map from the count
// (golang/go#79539): with a 26-byte variant of this input it allocated
// 13.6 GB in 69 s (measured on this machine without the validator).
func mapBomb(t testing.TB, count uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := stdgob.NewEncoder(&buf).Encode(map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	// The stream is the map type's definition, then the value message
	// [length][type id: ff xx][singleton 00][count 01][01 'a'][02].
	enc := buf.Bytes()
	if !bytes.HasSuffix(enc, []byte{0, 1, 1, 'a', 2}) {
		t.Fatalf("unexpected encoding % x", enc)
	}
	valueMsg := len(enc) - 8
	typeMsg, typeID := enc[:valueMsg], enc[valueMsg+1:valueMsg+3]
	body := append(append(bytes.Clone(typeID), 0), encUint(count)...) // type id, singleton, count
	body = append(body, 1, 'a', 2)                                    // "a": 1
	out := append(bytes.Clone(typeMsg), encUint(uint64(len(body)))...)
	return append(out, body...)
}

// encUint encodes x as encoding/gob encodes an unsigned integer.
func encUint(x uint64) []byte {
	if x < 128 {
		return []byte{byte(x)}
	}
	var b []byte
	for ; x > 0; x >>= 8 {
		b = append([]byte{byte(x)}, b...)
	}
	return append([]byte{byte(-len(b))}, b...)
}

func TestHostileMapLengthIsRejectedCheaply(t *testing.T) {
	c := gob.New()
	if err := c.Unmarshal(mapBomb(t, 1), new(map[string]int)); err != nil {
		t.Fatalf("the honest version of the payload does not decode: %v", err)
	}
	bomb := mapBomb(t, 1<<28)
	t.Logf("hostile payload: %d bytes: % x", len(bomb), bomb)

	type holder struct{ M map[string]int }
	for _, target := range []any{new(map[string]int), new(any), new(holder)} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		err := c.Unmarshal(bomb, target)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ports.ErrMalformed) {
			t.Errorf("into %T: %v, want ErrMalformed", target, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 || took > time.Second {
			t.Errorf("into %T: allocated %d bytes in %v", target, alloc, took)
		}
	}
}

func TestHostileMapInsideAnInterfaceIsRejected(t *testing.T) {
	c := gob.New()
	data, err := c.Marshal(Env{Payload: map[string]int{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	// The map's count is the byte before "a" (01 61); make it 2^28.
	i := bytes.Index(data, []byte{1, 1, 'a', 2})
	if i < 0 {
		t.Fatalf("map entry not found in % x", data)
	}
	bomb := append(bytes.Clone(data[:i]), append([]byte{0xfc, 0x10, 0, 0, 0}, data[i+1:]...)...)
	// Fix the length of the message the map is in: it is the last one, and
	// its one-byte length precedes it.
	bomb = fixLastMessageLength(t, bomb, len(data)-i)
	var got Env
	err = c.Unmarshal(bomb, &got)
	if !errors.Is(err, ports.ErrMalformed) || !strings.Contains(err.Error(), "map") {
		t.Errorf("Unmarshal = %v, want ErrMalformed about the map", err)
	}
}

// fixLastMessageLength walks the messages of a stream and rewrites the
// length of the last one, which grew by 4 bytes; tail is how many bytes of
// the original stream followed the edit point.
func fixLastMessageLength(t *testing.T, stream []byte, tail int) []byte {
	t.Helper()
	pos := 0
	for {
		n := int(stream[pos])
		if n > 0x7f {
			t.Fatalf("multi-byte message length at %d", pos)
		}
		if pos+1+n >= len(stream)-tail-4 {
			out := bytes.Clone(stream)
			out[pos] = byte(n + 4)
			if out[pos] > 0x7f {
				t.Fatal("message too long for this helper")
			}
			return out
		}
		pos += 1 + n
	}
}

// Node is a recursive type for the nesting test.
type Node struct {
	V    int
	Next *Node
}

func chain(n int) *Node {
	var head *Node
	for i := range n {
		head = &Node{V: i + 1, Next: head}
	}
	return head
}

func TestNestingIsBounded(t *testing.T) {
	c := gob.New()
	ok, err := c.Marshal(chain(gob.MaxDepth / 2))
	if err != nil {
		t.Fatal(err)
	}
	var got Node
	if err := c.Unmarshal(ok, &got); err != nil {
		t.Fatalf("chain of %d: %v", gob.MaxDepth/2, err)
	}
	deep, err := c.Marshal(chain(gob.MaxDepth + 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Unmarshal(deep, &got); !errors.Is(err, ports.ErrMalformed) {
		t.Errorf("chain deeper than MaxDepth: %v, want ErrMalformed", err)
	}
}

func TestTrailingDataIsRejected(t *testing.T) {
	c := gob.New()
	one, _ := c.Marshal(1)
	two, _ := c.Marshal(2)
	var n int
	if err := c.Unmarshal(append(bytes.Clone(one), two...), &n); !errors.Is(err, ports.ErrMalformed) {
		t.Errorf("two values: %v, want ErrMalformed", err)
	}
	if err := c.Unmarshal(append(bytes.Clone(one), 0), &n); !errors.Is(err, ports.ErrMalformed) {
		t.Errorf("a trailing byte: %v, want ErrMalformed", err)
	}
}

func TestMarshalResultsAreIndependent(t *testing.T) {
	c := gob.New()
	a, _ := c.Marshal("first")
	keep := bytes.Clone(a)
	for range 10 { // reuse the pooled buffer
		if _, err := c.Marshal(strings.Repeat("x", 100)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a, keep) {
		t.Error("a later Marshal overwrote an earlier result")
	}
	if c.Name() != "gob" || gob.Name != "gob" {
		t.Errorf("Name = %q", c.Name())
	}
}

// panicky panics when encoded.
type panicky struct{}

func (panicky) MarshalBinary() ([]byte, error) { panic("boom") }

func TestMarshalRecoversFromAPanickingMarshaler(t *testing.T) {
	_, err := gob.New().Marshal(panicky{})
	if !errors.Is(err, ports.ErrUnsupportedType) {
		t.Errorf("Marshal of a panicking MarshalBinary: %v", err)
	}
}

// failing fails to encode.
type failing struct{}

var errNope = errors.New("nope")

func (failing) MarshalBinary() ([]byte, error) { return nil, errNope }

func TestMarshalKeepsTheMarshalerError(t *testing.T) {
	_, err := gob.New().Marshal(failing{})
	if !errors.Is(err, ports.ErrUnsupportedType) || !errors.Is(err, errNope) {
		t.Errorf("Marshal of a failing MarshalBinary: %v", err)
	}
}

// TestSkippingAgreesWithEncodingGob decodes newer versions of a type into an
// older one lacking interface-typed fields, so encoding/gob skips them, and
// checks that Unmarshal succeeds exactly when encoding/gob alone does.
// encoding/gob cannot skip an interface value whose concrete type's
// definition is followed by the definition of a type nested in it (it drops
// the announced byte count, which covers only up to there): cases 0 and 1
// fail in encoding/gob itself, so they fail here too.
func TestSkippingAgreesWithEncodingGob(t *testing.T) {
	type V2 struct {
		Name  string
		Extra any
		L     []any
		N     int
	}
	type V1 struct {
		Name string
		N    int
	}
	for i, v := range []V2{
		{Name: "n", Extra: Inner{B: Leaf{X: 1}, Y: 2}, N: 3},
		{Name: "n", L: []any{Leaf{1}, nil, Inner{B: Leaf{2}}}, N: 3},
		{Name: "n", L: []any{Inner{B: Inner{B: Leaf{2}}}}, N: 3},
		{Name: "n", Extra: Leaf{X: 1}, L: []any{Leaf{2}, Leaf{3}}, N: 3},
	} {
		var buf bytes.Buffer
		if err := stdgob.NewEncoder(&buf).Encode(v); err != nil {
			t.Fatal(err)
		}
		var std, ours V1
		errStd := stdgob.NewDecoder(bytes.NewReader(buf.Bytes())).Decode(&std)
		errOurs := gob.New().Unmarshal(buf.Bytes(), &ours)
		if (errStd == nil) != (errOurs == nil) || std != ours && errStd == nil {
			t.Errorf("case %d: encoding/gob: %v %+v; Unmarshal: %v %+v", i, errStd, std, errOurs, ours)
		}
		if errOurs != nil && !errors.Is(errOurs, ports.ErrMalformed) {
			t.Errorf("case %d: %v, want ErrMalformed", i, errOurs)
		}
		t.Logf("case %d: encoding/gob: %v; Unmarshal: %v", i, errStd, errOurs)
	}
}
