package profile

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"sort"
	"strings"

	"github.com/lptrace/lptrace/trace"
)

// A flame graph of inclusive time per call stack: each box is a function
// called from the boxes below it, as wide as the time it ran (its callees
// included). One SVG, with its own script (click to zoom, search, a line
// of details under the pointer) and nothing fetched; or an HTML page
// around it.

// node is a call stack's entry: its time, calls and callees.
type node struct {
	label    string
	code     *trace.Code
	total    int64 // ns, callees included
	calls    uint64
	children map[string]*node
	order    []*node
}

func (n *node) child(label string, c *trace.Code) *node {
	if k := n.children[label]; k != nil {
		return k
	}
	if n.children == nil {
		n.children = map[string]*node{}
	}
	k := &node{label: label, code: c}
	n.children[label] = k
	n.order = append(n.order, k)
	return k
}

// own is the time the function ran itself.
func (n *node) own() int64 {
	own := n.total
	for _, k := range n.order {
		own -= k.total
	}
	return max(own, 0)
}

type flameOpen struct {
	n     *node
	start int64
	idle  int64 // time spent waiting in it (see isWait), left out
	wait  bool  // it is a wait itself
}

type flame struct {
	w     io.Writer
	opts  Options
	root  *node
	stack map[*threadSpans][]flameOpen
}

func newFlame(w io.Writer, opts Options) *flame {
	return &flame{w: w, opts: opts, root: &node{label: "all"}, stack: map[*threadSpans][]flameOpen{}}
}

func (f *flame) open(t *threadSpans, c *trace.Code, at int64, call bool, _ string) {
	st := f.stack[t]
	var parent *node
	if len(st) > 0 {
		parent = st[len(st)-1].n
	} else if f.opts.Threads {
		parent = f.root.child(threadLabel(t), nil)
	} else {
		parent = f.root
	}
	n := parent.child(frameName(c), c)
	if call {
		n.calls++
	}
	f.stack[t] = append(st, flameOpen{n: n, start: at, wait: !f.opts.Idle && isWait(c)})
}

func (f *flame) close(t *threadSpans, _ *trace.Code, at int64, _ bool, _ string) {
	st := f.stack[t]
	if len(st) == 0 {
		return
	}
	o := st[len(st)-1]
	f.stack[t] = st[:len(st)-1]
	d := max(at-o.start, 0)
	if o.wait {
		o.idle = d // all of it, and its callees
	}
	if len(st) > 1 {
		st[len(st)-2].idle += o.idle
	}
	d = max(d-o.idle, 0)
	o.n.total += d
	if len(st) == 1 && f.opts.Threads {
		f.root.child(threadLabel(t), nil).total += d
	}
}

func (f *flame) finish(m *matcher) error {
	f.root.total = 0
	for _, k := range f.root.order {
		f.root.total += k.total
	}
	bw := bufio.NewWriter(f.w)
	writeFlame(bw, f.root, f.opts)
	return bw.Flush()
}

// Layout, in pixels.
const (
	flameWidth  = 1200
	frameHeight = 16
	flameTop    = 56 // title, buttons
	flameBottom = 28 // the details line
)

// box is a frame placed in the picture.
type box struct {
	n     *node
	x, w  float64 // pixels
	depth int
}

func layout(root *node) ([]box, int) {
	var boxes []box
	depth := 0
	if root.total <= 0 {
		return nil, 0
	}
	scale := float64(flameWidth) / float64(root.total)
	var walk func(n *node, x float64, d int)
	walk = func(n *node, x float64, d int) {
		w := float64(n.total) * scale
		if w < 0.1 {
			return // too thin to see: its callees are thinner
		}
		boxes = append(boxes, box{n, x, w, d})
		depth = max(depth, d)
		kids := append([]*node(nil), n.order...)
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].label < kids[j].label })
		for _, k := range kids {
			walk(k, x, d+1)
			x += float64(k.total) * scale
		}
	}
	walk(root, 0, 0)
	return boxes, depth
}

func writeFlame(w *bufio.Writer, root *node, opts Options) {
	boxes, depth := layout(root)
	height := flameTop + (depth+1)*frameHeight + flameBottom
	title := "lptrace flame graph"
	if opts.Title != "" {
		title += ": " + opts.Title
	}
	esc := html.EscapeString
	if opts.HTML {
		fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n"+
			"<style>body{margin:0;background:#fff}</style></head><body>\n", esc(title))
	} else {
		w.WriteString(`<?xml version="1.0" standalone="no"?>` + "\n")
	}
	fmt.Fprintf(w, `<svg id="lptrace-flame" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" data-total="%d">`+"\n",
		flameWidth, height, flameWidth, height, root.total)
	fmt.Fprintf(w, "<style>%s</style>\n", flameStyle)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="#fdfaf2"/>`+"\n")
	fmt.Fprintf(w, `<text class="title" x="%d" y="22" text-anchor="middle">%s</text>`+"\n", flameWidth/2, esc(title))
	fmt.Fprintf(w, `<text class="sub" x="%d" y="40" text-anchor="middle">%s of running time in all; click a box to zoom, search to highlight</text>`+"\n",
		flameWidth/2, seconds(root.total))
	w.WriteString(`<text id="reset" class="button" x="10" y="40" visibility="hidden">Reset zoom</text>` + "\n")
	fmt.Fprintf(w, `<text id="search" class="button" x="%d" y="40" text-anchor="end">Search</text>`+"\n", flameWidth-10)
	fmt.Fprintf(w, `<text id="matched" class="sub" x="%d" y="%d" text-anchor="end"></text>`+"\n", flameWidth-10, height-10)
	fmt.Fprintf(w, `<text id="details" class="sub" x="10" y="%d"> </text>`+"\n", height-10)
	w.WriteString(`<g id="frames">` + "\n")
	for _, b := range boxes {
		n := b.n
		y := flameTop + (depth-b.depth)*frameHeight
		pct := 100 * float64(n.total) / float64(root.total)
		info := fmt.Sprintf("%s: %s (%.2f%%)", n.label, seconds(n.total), pct)
		if b.depth > 0 && n.code != nil {
			info += fmt.Sprintf(", own %s, %d calls", seconds(n.own()), n.calls)
		}
		fmt.Fprintf(w, `<g class="f" data-x="%.3f" data-w="%.3f" data-d="%d" data-label="%s"><title>%s</title>`+
			`<rect x="%.3f" y="%d" width="%.3f" height="%d" rx="2" fill="%s"/><text x="%.3f" y="%d">%s</text></g>`+"\n",
			b.x, b.w, b.depth, esc(n.label), esc(info),
			b.x, y, b.w, frameHeight-1, color(n.label, b.depth), b.x+3, y+frameHeight-4, esc(fit(n.label, b.w)))
	}
	w.WriteString("</g>\n<script><![CDATA[\n" + flameScript + "]]></script>\n</svg>\n")
	if opts.HTML {
		w.WriteString("</body></html>\n")
	}
}

// fit cuts a label to what fits in w pixels of 7-pixel characters.
func fit(s string, w float64) string {
	n := int((w - 6) / 7)
	switch {
	case n >= len(s):
		return s
	case n < 3:
		return ""
	}
	return s[:n-2] + ".."
}

// color is a warm colour of its own per function (the root and threads:
// grey).
func color(label string, depth int) string {
	if depth == 0 {
		return "rgb(200,200,200)"
	}
	h := fnv.New32a()
	h.Write([]byte(label))
	v := h.Sum32()
	return fmt.Sprintf("rgb(%d,%d,%d)", 205+v%50, 80+(v>>8)%150, (v>>16)%60)
}

func seconds(ns int64) string { return fmt.Sprintf("%.6f s", float64(ns)/1e9) }

const flameStyle = `text{font-family:monospace;font-size:12px;fill:#000}` +
	`.title{font-size:17px;font-family:sans-serif}.sub{font-family:sans-serif;font-size:12px;fill:#555}` +
	`.button{font-family:sans-serif;font-size:12px;fill:#0645ad;cursor:pointer}` +
	`.f{cursor:pointer}.f:hover rect{stroke:#000;stroke-width:0.5}.f text{pointer-events:none}`

// flameScript zooms (a click on a box: it fills the width, its callers
// span it, the rest hides), searches (a regular expression: matches turn
// magenta, the share of time they cover is shown), describes the box
// under the pointer, and takes both from the link (#zoom=, #search=). No
// library: it runs offline.
var flameScript = strings.TrimSpace(`
(function () {
  var svg = document.getElementById('lptrace-flame');
  var W = +svg.getAttribute('width');
  var frames = Array.prototype.slice.call(svg.querySelectorAll('g.f'));
  function byId(id) { return svg.querySelector('#' + id); }
  function num(g, a) { return +g.getAttribute('data-' + a); }
  function place(g, x, w) {
    var r = g.querySelector('rect'), t = g.querySelector('text');
    r.setAttribute('x', x); r.setAttribute('width', w);
    t.setAttribute('x', x + 3);
    var label = g.getAttribute('data-label'), n = Math.floor((w - 6) / 7);
    t.textContent = n >= label.length ? label : (n < 3 ? '' : label.slice(0, n - 2) + '..');
  }
  function zoom(g) {
    var x0 = num(g, 'x'), w0 = num(g, 'w'), d0 = num(g, 'd'), k = W / w0;
    frames.forEach(function (f) {
      var x = num(f, 'x'), w = num(f, 'w'), d = num(f, 'd');
      if (d < d0 && x <= x0 + 1e-6 && x + w >= x0 + w0 - 1e-6) {
        f.style.display = ''; f.style.opacity = 0.6; place(f, 0, W);
      } else if (d >= d0 && x >= x0 - 1e-6 && x + w <= x0 + w0 + 1e-6) {
        f.style.display = ''; f.style.opacity = 1; place(f, (x - x0) * k, w * k);
      } else {
        f.style.display = 'none';
      }
    });
    byId('reset').setAttribute('visibility', 'visible');
  }
  function reset() {
    frames.forEach(function (f) { f.style.display = ''; f.style.opacity = 1; place(f, num(f, 'x'), num(f, 'w')); });
    byId('reset').setAttribute('visibility', 'hidden');
  }
  function search(term) {
    var re, covered = [], matched = 0;
    try { re = new RegExp(term); } catch (e) { return; }
    frames.forEach(function (f) {
      var r = f.querySelector('rect');
      if (!r.getAttribute('data-fill')) r.setAttribute('data-fill', r.getAttribute('fill'));
      if (term && re.test(f.getAttribute('data-label')) && num(f, 'd') > 0) {
        r.setAttribute('fill', 'rgb(230,0,230)');
        covered.push([num(f, 'x'), num(f, 'x') + num(f, 'w')]);
      } else {
        r.setAttribute('fill', r.getAttribute('data-fill'));
      }
    });
    covered.sort(function (a, b) { return a[0] - b[0]; });
    var end = -1;
    covered.forEach(function (c) {
      if (c[0] >= end) { matched += c[1] - c[0]; end = c[1]; }
      else if (c[1] > end) { matched += c[1] - end; end = c[1]; }
    });
    byId('matched').textContent = term ? 'matched: ' + (100 * matched / W).toFixed(2) + '%' : '';
  }
  frames.forEach(function (f) {
    f.addEventListener('click', function () { zoom(f); });
    f.addEventListener('mouseover', function () { byId('details').textContent = f.querySelector('title').textContent; });
    f.addEventListener('mouseout', function () { byId('details').textContent = ' '; });
  });
  byId('reset').addEventListener('click', reset);
  byId('search').addEventListener('click', function () {
    var term = prompt('Search (a regular expression):', '');
    if (term !== null) search(term);
  });
  // A link can say what to show: #search=REGEXP, #zoom=REGEXP (the
  // first box that matches).
  var hash = decodeURIComponent(location.hash || '');
  var z = /[#&]zoom=([^&]*)/.exec(hash), s = /[#&]search=([^&]*)/.exec(hash);
  if (z) frames.some(function (f) { return new RegExp(z[1]).test(f.getAttribute('data-label')) && (zoom(f), true); });
  if (s) search(s[1]);
})();
`) + "\n"
