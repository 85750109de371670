package api

import (
	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/deploy"
)

// cleanupView is a queued removal of a deleted cluster's node, waiting for
// its agent.
type cleanupView struct {
	ID        ids.ID `json:"id"`
	ServerID  ids.ID `json:"serverId"`
	ManagerIP string `json:"managerIp"`
	// NodeID is the deleted node's id, the name its agent knows it by.
	NodeID          string   `json:"nodeId"`
	ClusterName     string   `json:"clusterName"`
	ProgramDir      string   `json:"programDir"`
	DataDir         string   `json:"dataDir"`
	AllowedRoots    []string `json:"allowedRoots"`
	Reason          string   `json:"reason"`
	CreateTime      apiTime  `json:"createTime"`
	Attempts        int      `json:"attempts"`
	LastError       string   `json:"lastError"`
	LastAttemptTime apiTime  `json:"lastAttemptTime"`
}

func toCleanupView(c deploy.Cleanup) cleanupView {
	roots := c.AllowedRoots
	if roots == nil {
		roots = []string{}
	}
	return cleanupView{
		ID: c.ID, ServerID: c.ServerID, ManagerIP: c.ManagerIP, NodeID: c.Node, ClusterName: c.ClusterName,
		ProgramDir: c.ProgramDir, DataDir: c.DataDir, AllowedRoots: roots, Reason: c.Reason,
		CreateTime: apiTime(c.CreatedAt), Attempts: c.Attempts, LastError: c.LastError, LastAttemptTime: apiTime(c.LastAttemptAt),
	}
}

func (a *API) listCleanups(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	server, err := queryID(c, "serverId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := eng.Cleanups(c.Request().Context(), server, p)
	if err != nil {
		return err
	}
	views := make([]cleanupView, len(list))
	for i, cl := range list {
		views[i] = toCleanupView(cl)
	}
	return ok(c, newPage(p, total, views))
}
