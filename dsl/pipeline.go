package dsl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

const (
	blockPipeline = "pipeline"
	blockStep     = "step"
	attrIf        = "if"
)

var pipelineSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockStep, LabelNames: []string{"type", "name"}},
	},
}

// stepSchema names only `if`: every other attribute or block of a step
// belongs to its type, which the planner knows.
var stepSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: attrIf},
	},
}

// decodePipelineBlock decodes a pipeline and its steps, leaving each step's
// attributes unevaluated.
func decodePipelineBlock(block *hcl.Block) (*Pipeline, hcl.Diagnostics) {
	p := &Pipeline{
		Name:      block.Labels[0],
		NameRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(pipelineSchema)
	diags = append(diags, emptyLabel("pipeline", p.Name, p.NameRange)...)
	seen := map[string]*Step{}
	for _, sb := range content.Blocks {
		s, more := decodeStepBlock(sb)
		diags = append(diags, more...)
		if prev, dup := seen[s.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate step",
				Detail: fmt.Sprintf("A step named %q was already defined in pipeline %q at %s. Step names must be unique within a pipeline; rename one of them.",
					s.Name, p.Name, prev.NameRange),
				Subject: s.NameRange.Ptr(),
			})
			continue
		}
		seen[s.Name] = s
		p.Steps = append(p.Steps, s)
	}
	return p, diags
}

func decodeStepBlock(block *hcl.Block) (*Step, hcl.Diagnostics) {
	s := &Step{
		Type:      block.Labels[0],
		Name:      block.Labels[1],
		TypeRange: block.LabelRanges[0],
		NameRange: block.LabelRanges[1],
		DeclRange: block.DefRange,
	}
	content, remain, diags := block.Body.PartialContent(stepSchema)
	diags = append(diags, emptyLabel("step type", s.Type, s.TypeRange)...)
	diags = append(diags, emptyLabel("step", s.Name, s.NameRange)...)
	if attr, ok := content.Attributes[attrIf]; ok {
		s.If = attr.Expr
	}
	s.Body = remain
	return s, diags
}

// emptyLabel reports an empty block label: nothing could refer to it.
func emptyLabel(what, label string, rng hcl.Range) hcl.Diagnostics {
	if label != "" {
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Empty " + what + " name",
		Detail:   fmt.Sprintf("A %s name cannot be empty. Give it a name.", what),
		Subject:  rng.Ptr(),
	}}
}
