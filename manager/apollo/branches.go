package apollo

// Gray release. Apollo's branches keep a draft of their own beside their
// namespace's, published to the clients whose IPs the branch's rules name
// and merged into the namespace later. ADMQ's configuration model has one
// draft per file layer, with per-node overrides: a second draft of a layer
// has nowhere to live, so the branch calls are refused, saying how to make
// a canary with the model as it is: edit and publish the change on one
// node's cluster (a flush of that node), then on default (the rolling
// flush of the rest).

const grayRefusal = "gray release (branches) is not supported: a branch needs a draft of its own beside the namespace's, " +
	"and a config file has one draft per layer here. For a canary, change the keys on a node's cluster " +
	"(clusters/<node name>/namespaces/<namespace>/items), publish that cluster (a flush of that node), then change and publish default: " +
	"the rolling flush of every node, one at a time behind the health gate"

// getBranch answers that the namespace has no branch: 200 with an empty
// body, as Apollo does.
func (s *Server) getBranch(x *call) error { return writeEmpty(x) }

func (s *Server) refuseBranch(x *call) error { return badRequest(grayRefusal) }
