package steps

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// A reader of nginx configuration just deep enough for nginx_upstream: it
// finds the `server` lines of `upstream` blocks with their byte ranges, so
// that a rewrite changes those lines only and keeps every comment, blank
// line and other directive as it was.

type nginxConf struct {
	text    string
	servers []nginxServer
	names   []string // upstream blocks, in file order
}

type nginxServer struct {
	upstream string
	addr     string   // as written
	params   []string // as written: weight=5, backup, down, ...
	// start and end are the byte range of the statement, from `server`
	// to its `;` inclusive.
	start, end int
}

func (s nginxServer) has(param string) bool {
	for _, p := range s.params {
		if p == param {
			return true
		}
	}
	return false
}

func (s nginxServer) isDown() bool { return s.has("down") }

type nginxToken struct {
	text       string
	start, end int
}

func lexNginx(text string) ([]nginxToken, error) {
	var toks []nginxToken
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, nginxToken{text: text[i : i+1], start: i, end: i + 1})
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(text) && text[j] != c {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) {
				return nil, fmt.Errorf("line %d: unterminated quoted string", lineOf(text, i))
			}
			toks = append(toks, nginxToken{text: text[i : j+1], start: i, end: j + 1})
			i = j + 1
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n{};#\"'", rune(text[j])) {
				j++
			}
			toks = append(toks, nginxToken{text: text[i:j], start: i, end: j})
			i = j
		}
	}
	return toks, nil
}

func lineOf(text string, off int) int { return strings.Count(text[:off], "\n") + 1 }

// parseNginxUpstreams reads the upstream blocks of a configuration file.
func parseNginxUpstreams(text string) (*nginxConf, error) {
	toks, err := lexNginx(text)
	if err != nil {
		return nil, err
	}
	c := &nginxConf{text: text}
	var blocks []string // the directive of each open block; "upstream NAME"
	var words []nginxToken
	for _, t := range toks {
		switch t.text {
		case "{":
			if len(words) == 0 {
				return nil, fmt.Errorf("line %d: a block without a directive", lineOf(text, t.start))
			}
			name := words[0].text
			if name == "upstream" && len(words) >= 2 {
				name += " " + unquote(words[1].text)
				c.names = append(c.names, unquote(words[1].text))
			}
			blocks = append(blocks, name)
			words = nil
		case "}":
			if len(words) > 0 {
				return nil, fmt.Errorf("line %d: %q has no closing \";\"", lineOf(text, words[0].start), words[0].text)
			}
			if len(blocks) == 0 {
				return nil, fmt.Errorf("line %d: unexpected \"}\"", lineOf(text, t.start))
			}
			blocks = blocks[:len(blocks)-1]
		case ";":
			if len(words) == 0 {
				continue
			}
			if len(blocks) > 0 && words[0].text == "server" && len(words) >= 2 {
				if up, ok := strings.CutPrefix(blocks[len(blocks)-1], "upstream "); ok {
					s := nginxServer{upstream: up, addr: unquote(words[1].text), start: words[0].start, end: t.end}
					for _, w := range words[2:] {
						s.params = append(s.params, w.text)
					}
					c.servers = append(c.servers, s)
				}
			}
			words = nil
		default:
			words = append(words, t)
		}
	}
	if len(words) > 0 {
		return nil, fmt.Errorf("line %d: %q has no closing \";\"", lineOf(text, words[0].start), words[0].text)
	}
	if len(blocks) > 0 {
		return nil, errors.New("a block is not closed: \"}\" is missing")
	}
	return c, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// find returns the indexes of the server lines for addr, in upstream (or
// in every upstream when it is "").
func (c *nginxConf) find(upstream, addr string) []int {
	var out []int
	for i, s := range c.servers {
		if s.addr == addr && (upstream == "" || s.upstream == upstream) {
			out = append(out, i)
		}
	}
	return out
}

// describe lists the upstreams and their servers, for errors.
func (c *nginxConf) describe() string {
	if len(c.names) == 0 {
		return "none"
	}
	byName := map[string][]string{}
	for _, s := range c.servers {
		byName[s.upstream] = append(byName[s.upstream], s.addr)
	}
	parts := make([]string, len(c.names))
	for i, n := range c.names {
		parts[i] = fmt.Sprintf("%s: %s", n, strings.Join(byName[n], ", "))
	}
	return strings.Join(parts, "; ")
}

// checkOthersUp refuses to take the lines mine down when an upstream of
// theirs would have no other server in traffic (a backup server only
// serves when the others are down, so it does not count).
func (c *nginxConf) checkOthersUp(mine []int, t nginxTarget) error {
	isMine := map[int]bool{}
	ups := map[string]bool{}
	for _, k := range mine {
		isMine[k] = true
		ups[c.servers[k].upstream] = true
	}
	var empty []string
	for up := range ups {
		n := 0
		for i, s := range c.servers {
			if s.upstream == up && !isMine[i] && !s.isDown() && !s.has("backup") {
				n++
			}
		}
		if n == 0 {
			empty = append(empty, up)
		}
	}
	if len(empty) == 0 {
		return nil
	}
	sort.Strings(empty)
	return fmt.Errorf("refusing to take down %s: upstream %s would have no other server in traffic, so every request would fail; wait until the others are up, or set allow_last = true to accept the outage",
		t, strings.Join(empty, ", "))
}

// withDown returns the text with each line mine[i] marked down or not.
func (c *nginxConf) withDown(mine []int, down func(i int) bool) string {
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	for i, k := range mine {
		s := c.servers[k]
		parts := []string{"server", c.text[s.start:s.end]}
		// The address as written (quotes kept).
		toks, _ := lexNginx(c.text[s.start:s.end])
		if len(toks) >= 2 {
			parts[1] = toks[1].text
		}
		for _, p := range s.params {
			if p != "down" {
				parts = append(parts, p)
			}
		}
		if down(i) {
			parts = append(parts, "down")
		}
		edits = append(edits, edit{s.start, s.end, strings.Join(parts, " ") + ";"})
	}
	sort.Slice(edits, func(a, b int) bool { return edits[a].start < edits[b].start })
	var b strings.Builder
	at := 0
	for _, e := range edits {
		b.WriteString(c.text[at:e.start])
		b.WriteString(e.text)
		at = e.end
	}
	b.WriteString(c.text[at:])
	return b.String()
}
