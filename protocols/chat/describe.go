package chat

// shapes describes each entry's params and result for rpc.discover.
var shapes = map[string][2]string{
	MethodDiscover:  {"{}", "{methods:[{name:string, id:uint, push:bool, params:string, result?:string}]}"},
	MethodPing:      {"{}", "{status:string, timestamp:int}"},
	MethodBroadcast: {"{message:string}", "{status:string, delivered:uint}"},
	MethodJoin:      {"{room:string}", "{room:string, members:[string], offset:uint, epoch:string}"},
	MethodLeave:     {"{room:string}", "{room:string}"},
	MethodSend:      {"{room:string, message:string}", "{room:string, offset:uint, epoch:string}"},
	MethodDirect:    {"{to:string, message:string}", "{delivered:uint}"},
	MethodMembers:   {"{room:string}", "{room:string, members:[string]}"},
	MethodHistory:   {"{room:string, since?:uint, limit?:uint, epoch?:string}", "{room:string, messages:[{offset:uint, from:string, message:string, ts:int}], epoch:string, recovered:bool}"},
	PushMessage:     {"{room?:string, from:string, to?:string, message:string, offset?:uint, epoch?:string, ts:int}", ""},
	PushPresence:    {"{room:string, client_id:string, event:string}", ""},
	PushNotice:      {"{kind:string, message:string}", ""},
}

// Describe returns the rpc.discover list: every method and push.
func Describe() []MethodInfo {
	out := make([]MethodInfo, len(Entries))
	for i, e := range Entries {
		s := shapes[e.Name]
		out[i] = MethodInfo{Name: e.Name, ID: e.ID, Push: e.Push, Params: s[0], Result: s[1]}
	}
	return out
}
