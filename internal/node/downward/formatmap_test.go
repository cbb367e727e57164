package downward

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/fieldpath"

	"github.com/pocketkube/pocketkube/internal/golden"
)

// TestFormatMapGolden pins how metadata.labels and metadata.annotations
// read through the Downward API: one key="value" line per entry, keys in
// byte order, values quoted as Go's strconv.Quote does (so non-ASCII
// printable runes stay as they are and everything else is escaped), no
// trailing newline. The same text is a downwardAPI volume's labels or
// annotations file. Each golden is the exact file content.
func TestFormatMapGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    map[string]string
	}{
		{name: "nil", m: nil},
		{name: "empty", m: map[string]string{}},
		{name: "chapter-labels", m: map[string]string{"foo": "bar"}},
		{name: "chapter-annotations", m: map[string]string{"key1": "value1", "key2": "multi\nline\nvalue\n"}},
		{name: "sorted-keys", m: map[string]string{"z": "1", "b": "2", "app.kubernetes.io/name": "3", "a/b": "4", "a": "5", "A": "6", "a-b": "7"}},
		{name: "empty-value", m: map[string]string{"k": ""}},
		{name: "quotes-backslashes", m: map[string]string{"quote": `say "hi"`, "backslash": `C:\path\to`, "literal-n": `a\nb`, "single": `it's`}},
		{name: "whitespace", m: map[string]string{"tab": "a\tb", "cr": "a\r\nb", "lead-trail": "  x  ", "vt-ff": "\v\f"}},
		{name: "unicode", m: map[string]string{"latin": "héllo", "cjk": "日本", "emoji": "🚀", "zwj": "👨\u200d👩\u200d👧", "combining": "e\u0301", "nbsp": "a\u00a0b", "line-sep": "a\u2028b", "bom": "\ufeffx"}},
		{name: "invalid-utf8", m: map[string]string{"ff-fe": "\xff\xfe", "truncated": "a\xc3", "surrogate": "\xed\xa0\x80", "nul": "a\x00b", "del": "\x7f", "bell": "\a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tc.m, Annotations: tc.m}}
			for _, path := range []string{"metadata.labels", "metadata.annotations"} {
				got, err := fieldValue(&v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}, pod, nil, nil)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				// Upstream is the spec: FormatMap is what kubelet and the
				// downwardAPI volume plugin call.
				if want := fieldpath.FormatMap(tc.m); got != want {
					t.Errorf("%s = %q, upstream FormatMap gives %q", path, got, want)
				}
				golden.Check(t, "formatmap/"+tc.name+".golden", []byte(got))
			}
		})
	}
}

// TestSubscriptedMapValue checks that metadata.labels['k'] gives the raw
// value, unquoted, and an absent key the empty string.
func TestSubscriptedMapValue(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{"key2": "multi\nline\nvalue\n", "q": `"x"`},
	}}
	for _, tc := range []struct {
		name, path, want string
	}{
		{name: "label", path: "metadata.labels['app']", want: "web"},
		{name: "annotation not escaped", path: "metadata.annotations['key2']", want: "multi\nline\nvalue\n"},
		{name: "annotation not quoted", path: "metadata.annotations['q']", want: `"x"`},
		{name: "absent key", path: "metadata.labels['nope']", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fieldValue(&v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: tc.path}, pod, nil, nil)
			if err != nil || got != tc.want {
				t.Errorf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
