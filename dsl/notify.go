package dsl

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

const blockNotify = "notify"

// Notification kinds: the first label of a notify block.
const (
	NotifyWebhook = "webhook"
	NotifySlack   = "slack"
)

// NotifyEvents are the events a notify block may ask for: every event of
// the events log except NOTIFY_FAILED, which reports a notification that
// could not be sent and so cannot itself be one. The executor's and the
// notifier's tests check that this list matches the executor's events.
var NotifyEvents = []string{
	"RUN_START", "RUN_SUCCESS", "RUN_FAILED",
	"SERVICE_RESTART_START", "SERVICE_RESTART_SUCCESS", "SERVICE_RESTART_FAILED", "SERVICE_SKIPPED",
	"STEP_START", "STEP_SUCCESS", "STEP_FAILED",
	"ROLLBACK_START", "ROLLBACK_SUCCESS", "ROLLBACK_FAILED",
	"CANARY_START", "CANARY_PROMOTED", "CANARY_FAILED",
}

// DefaultNotifyEvents are sent when a notify block has no events attribute:
// how a run ended, and every rollback.
var DefaultNotifyEvents = []string{"RUN_FAILED", "ROLLBACK_START", "ROLLBACK_SUCCESS", "ROLLBACK_FAILED", "RUN_SUCCESS"}

var notifySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url"},
		{Name: "url_from_env"},
		{Name: "events"},
		{Name: "headers_from_env"},
		{Name: "timeout"},
		{Name: "retries"},
		// Accepted by the schema only to be refused with a way out: a
		// header value written in a plan is a secret in a repository.
		{Name: "headers"},
	},
}

// Notify is a `notify "webhook" "ops" { ... }` block: where to send which
// events. Secrets never come from the plan text: header values are read
// from environment variables (HeadersFromEnv), and so may the whole URL
// (URLFromEnv), since a Slack incoming-webhook URL is itself a secret.
type Notify struct {
	Kind string // NotifyWebhook or NotifySlack
	Name string
	// URL is the endpoint written in the plan; "" when URLFromEnv is set.
	URL string
	// URLFromEnv names the environment variable holding the URL.
	URLFromEnv string
	// Events are the event names to send, DefaultNotifyEvents when unset.
	Events    []string
	EventsSet bool
	// HeadersFromEnv maps a header name to the environment variable that
	// holds its value (webhook only).
	HeadersFromEnv map[string]string
	// Timeout bounds one delivery attempt; Retries is how many more
	// attempts follow a failed one. Unset: the notifier's defaults.
	Timeout    time.Duration
	TimeoutSet bool
	Retries    int
	RetriesSet bool

	KindRange hcl.Range
	NameRange hcl.Range
	DeclRange hcl.Range
}

// Ref is the block's address, "webhook.ops", unique in a Config.
func (n *Notify) Ref() string { return n.Kind + "." + n.Name }

var (
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerNameRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// decodeNotifyBlock decodes a notify block. It returns nil when the kind is
// unknown, after reporting it.
func decodeNotifyBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Notify, hcl.Diagnostics) {
	n := &Notify{
		Kind:      block.Labels[0],
		Name:      block.Labels[1],
		KindRange: block.LabelRanges[0],
		NameRange: block.LabelRanges[1],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(notifySchema)
	switch n.Kind {
	case NotifyWebhook, NotifySlack:
	default:
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown notification kind",
			Detail: fmt.Sprintf("%q is not a notification kind. Use %q (a JSON body of the event) or %q (a Slack incoming webhook).%s",
				n.Kind, NotifyWebhook, NotifySlack, DidYouMean(n.Kind, []string{NotifyWebhook, NotifySlack})),
			Subject: n.KindRange.Ptr(),
		})
	}
	diags = append(diags, emptyLabel("notify", n.Name, n.NameRange)...)

	if attr, ok := content.Attributes["headers"]; ok {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Header values in the plan",
			Detail: "A plan never holds header values: they are usually secrets, and plans live in repositories. " +
				"Name the environment variable that holds each value instead, such as headers_from_env = { Authorization = \"OPS_TOKEN\" }.",
			Subject: attr.NameRange.Ptr(),
		})
	}

	urlAttr, hasURL := content.Attributes["url"]
	envAttr, hasEnv := content.Attributes["url_from_env"]
	switch {
	case hasURL && hasEnv:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Conflicting arguments",
			Detail:   `Give either "url" or "url_from_env", not both.`,
			Subject:  envAttr.NameRange.Ptr(),
		})
	case !hasURL && !hasEnv:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail: fmt.Sprintf("A %q notification needs \"url\", or \"url_from_env\" naming the environment variable that holds it (use that when the URL carries a token, as Slack's do).",
				n.Kind),
			Subject: block.Body.MissingItemRange().Ptr(),
		})
	}
	if hasURL {
		if s, ok, more := attrString(urlAttr, ctx); ok {
			diags = append(diags, more...)
			if d := validateNotifyURL(s, urlAttr); d != nil {
				diags = append(diags, d)
			} else {
				n.URL = s
			}
		} else {
			diags = append(diags, more...)
		}
	}
	if hasEnv {
		if s, ok, more := attrString(envAttr, ctx); ok {
			diags = append(diags, more...)
			if d := validateEnvName(s, envAttr.Expr.Range()); d != nil {
				diags = append(diags, d)
			} else {
				n.URLFromEnv = s
			}
		} else {
			diags = append(diags, more...)
		}
	}

	n.Events = DefaultNotifyEvents
	if attr, ok := content.Attributes["events"]; ok {
		events, ok, more := attrStringList(attr, ctx)
		diags = append(diags, more...)
		if ok {
			// A literal list points each diagnostic at its element.
			elems, listDiags := hcl.ExprList(attr.Expr)
			rangeOf := func(i int) hcl.Range {
				if !listDiags.HasErrors() && len(elems) == len(events) {
					return elems[i].Range()
				}
				return attr.Expr.Range()
			}
			bad := false
			for i, e := range events {
				if !containsString(NotifyEvents, e) {
					bad = true
					detail := fmt.Sprintf("%q is not an event a notification can send.", e)
					if e == "NOTIFY_FAILED" {
						detail = "NOTIFY_FAILED reports a notification that could not be sent, so it is written to the events log only."
					}
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Unknown event",
						Detail:   detail + DidYouMean(e, NotifyEvents) + " Events: " + strings.Join(NotifyEvents, ", ") + ".",
						Subject:  rangeOf(i).Ptr(),
					})
				}
			}
			if len(events) == 0 {
				bad = true
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "No events",
					Detail:   "This notification would never send anything. List the events to send, or remove \"events\" to send the defaults (" + strings.Join(DefaultNotifyEvents, ", ") + ").",
					Subject:  attr.Expr.Range().Ptr(),
				})
			}
			if !bad {
				n.Events, n.EventsSet = events, true
			}
		}
	}

	if attr, ok := content.Attributes["headers_from_env"]; ok {
		if n.Kind != NotifyWebhook {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   fmt.Sprintf("The \"headers_from_env\" argument applies only to %q notifications; a Slack incoming webhook authenticates by its URL (use url_from_env).", NotifyWebhook),
				Subject:  attr.NameRange.Ptr(),
			})
		} else if m, ok, more := attrStringMap(attr, ctx); ok {
			diags = append(diags, more...)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if !headerNameRe.MatchString(k) {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid header name",
						Detail:   fmt.Sprintf("%q is not a valid HTTP header name: use letters, digits and dashes, such as \"Authorization\" or \"X-Api-Key\".", k),
						Subject:  attr.Expr.Range().Ptr(),
					})
					delete(m, k)
					continue
				}
				if d := validateEnvName(m[k], attr.Expr.Range()); d != nil {
					diags = append(diags, d)
					delete(m, k)
				}
			}
			n.HeadersFromEnv = m
		} else {
			diags = append(diags, more...)
		}
	}
	if attr, ok := content.Attributes["timeout"]; ok {
		var more hcl.Diagnostics
		n.Timeout, n.TimeoutSet, more = attrDuration(attr, ctx)
		diags = append(diags, more...)
		if n.TimeoutSet && n.Timeout == 0 {
			n.TimeoutSet = false
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid duration",
				Detail:   `A notification's timeout bounds each attempt, so it must be more than zero, such as "5s".`,
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["retries"]; ok {
		var more hcl.Diagnostics
		n.Retries, n.RetriesSet, more = attrInt(attr, ctx, 0, 10)
		diags = append(diags, more...)
	}
	return n, diags
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func validateEnvName(s string, rng hcl.Range) *hcl.Diagnostic {
	if envNameRe.MatchString(s) {
		return nil
	}
	detail := fmt.Sprintf("%q is not an environment variable name: use letters, digits and underscores, such as \"OPS_TOKEN\".", s)
	if strings.ContainsAny(s, " :/=") || len(s) > 40 {
		detail += " The plan names the variable; its value (the secret) stays in the environment of the run."
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid environment variable name",
		Detail:   detail,
		Subject:  rng.Ptr(),
	}
}

func validateNotifyURL(s string, attr *hcl.Attribute) *hcl.Diagnostic {
	u, err := url.Parse(s)
	reason := ""
	switch {
	case err != nil:
		reason = "it does not parse"
	case u.Scheme != "http" && u.Scheme != "https":
		reason = "its scheme is not http or https"
	case u.Host == "" || u.Hostname() == "":
		reason = "it has no host"
	case u.User != nil:
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Credentials in URL",
			Detail:   "The notification URL carries a user or password, which would live in the plan's repository. Put the whole URL in an environment variable and name it with url_from_env, or send the credentials in a header with headers_from_env.",
			Subject:  attr.Expr.Range().Ptr(),
		}
	default:
		return nil
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid URL",
		Detail:   fmt.Sprintf("The notification URL %q cannot be used: %s. Give a full URL such as \"https://hooks.example.com/rollout\".", s, reason),
		Subject:  attr.Expr.Range().Ptr(),
	}
}
