package operon

// Condition is one status condition in the metav1.Condition shape.
type Condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"` // "True", "False" or "Unknown"
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime"`
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
}

// ConditionStatus maps a bool to "True" / "False".
func ConditionStatus(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// NewCondition returns a condition without a transition time: SetCondition
// decides it.
func NewCondition(typ string, status bool, reason, message string) Condition {
	return Condition{Type: typ, Status: ConditionStatus(status), Reason: reason, Message: message}
}

// WithObservedGeneration records the parent generation the condition
// describes (ok false leaves it out).
func (c Condition) WithObservedGeneration(gen int64, ok bool) Condition {
	if ok {
		c.ObservedGeneration = &gen
	} else {
		c.ObservedGeneration = nil
	}
	return c
}

// SetCondition sets c in conditions, replacing one of the same type in place,
// like apimachinery's meta.SetStatusCondition: lastTransitionTime is kept
// from the existing condition when the status did not change; otherwise it
// is c's own (if set) or now. Reason, message and observedGeneration always
// take c's values.
func SetCondition(conditions []Condition, c Condition) []Condition {
	for i := range conditions {
		if conditions[i].Type != c.Type {
			continue
		}
		if conditions[i].Status == c.Status {
			c.LastTransitionTime = conditions[i].LastTransitionTime
		} else if c.LastTransitionTime == "" {
			c.LastTransitionTime = NowRFC3339()
		}
		conditions[i] = c
		return conditions
	}
	if c.LastTransitionTime == "" {
		c.LastTransitionTime = NowRFC3339()
	}
	return append(conditions, c)
}

// FindCondition returns the condition of a type, or nil.
func FindCondition(conditions []Condition, typ string) *Condition {
	for i := range conditions {
		if conditions[i].Type == typ {
			return &conditions[i]
		}
	}
	return nil
}

// RemoveCondition drops the condition of a type.
func RemoveCondition(conditions []Condition, typ string) []Condition {
	out := conditions[:0]
	for _, c := range conditions {
		if c.Type != typ {
			out = append(out, c)
		}
	}
	return out
}

// ConditionsFromStatus reads `conditions` from a status object, skipping
// malformed entries (they are replaced, not a reason to fail).
func ConditionsFromStatus(status map[string]any) []Condition {
	items, _ := status["conditions"].([]any)
	out := []Condition{}
	for _, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		typ, ok1 := m["type"].(string)
		st, ok2 := m["status"].(string)
		if !ok1 || !ok2 || (st != "True" && st != "False" && st != "Unknown") {
			continue
		}
		c := Condition{Type: typ, Status: st}
		var bad bool
		for key, dst := range map[string]*string{"reason": &c.Reason, "message": &c.Message, "lastTransitionTime": &c.LastTransitionTime} {
			if v, present := m[key]; present && v != nil {
				s, ok := v.(string)
				if !ok {
					bad = true
				}
				*dst = s
			}
		}
		if g, present := m["observedGeneration"]; present && g != nil {
			n, ok := toInt64(g)
			if !ok {
				bad = true
			}
			c.ObservedGeneration = &n
		}
		if !bad {
			out = append(out, c)
		}
	}
	return out
}
