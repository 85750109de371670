package apollo

import "time"

// The JSON shapes of Apollo's Open API DTOs, named field for field as
// Apollo's clients read them with Gson: a null field is left out, a
// primitive (int, long, boolean) is always there, dates are
// yyyy-MM-dd'T'HH:mm:ss.SSSZ and ids are JSON numbers.

// DateLayout is Gson's yyyy-MM-dd'T'HH:mm:ss.SSSZ, e.g.
// 2016-08-11T12:06:41.818+0800.
const DateLayout = "2006-01-02T15:04:05.000-0700"

// gsonTime is a time in DateLayout; the zero time is left out (use it with
// the omitzero tag option).
type gsonTime time.Time

// MarshalJSON writes the time in DateLayout.
func (t gsonTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).Format(DateLayout) + `"`), nil
}

// IsZero makes omitzero leave an unset time out, as Gson leaves out null.
func (t gsonTime) IsZero() bool { return time.Time(t).IsZero() }

// baseDTO is Apollo's BaseDTO: who made and last changed a thing, when.
// The display names are the users' names: console users have no display
// name of their own.
type baseDTO struct {
	DataChangeCreatedBy                 string   `json:"dataChangeCreatedBy,omitempty"`
	DataChangeLastModifiedBy            string   `json:"dataChangeLastModifiedBy,omitempty"`
	DataChangeCreatedByDisplayName      string   `json:"dataChangeCreatedByDisplayName,omitempty"`
	DataChangeLastModifiedByDisplayName string   `json:"dataChangeLastModifiedByDisplayName,omitempty"`
	DataChangeCreatedTime               gsonTime `json:"dataChangeCreatedTime,omitzero"`
	DataChangeLastModifiedTime          gsonTime `json:"dataChangeLastModifiedTime,omitzero"`
}

func base(createdBy, modifiedBy string, created, modified time.Time) baseDTO {
	return baseDTO{
		DataChangeCreatedBy: createdBy, DataChangeLastModifiedBy: modifiedBy,
		DataChangeCreatedByDisplayName: createdBy, DataChangeLastModifiedByDisplayName: modifiedBy,
		DataChangeCreatedTime: gsonTime(created), DataChangeLastModifiedTime: gsonTime(modified),
	}
}

// AppDTO is OpenAppDTO: an ADMQ cluster seen as an Apollo app.
type AppDTO struct {
	Name       string `json:"name"`
	AppID      string `json:"appId"`
	OrgID      string `json:"orgId,omitempty"`
	OrgName    string `json:"orgName,omitempty"`
	OwnerName  string `json:"ownerName,omitempty"`
	OwnerEmail string `json:"ownerEmail,omitempty"`
	baseDTO
}

// EnvClusterDTO is OpenEnvClusterDTO.
type EnvClusterDTO struct {
	Env      string   `json:"env"`
	Clusters []string `json:"clusters"`
}

// ClusterDTO is OpenClusterDTO: the cluster-wide layer ("default") or one
// node of an ADMQ cluster. ID is the ADMQ cluster's id for default, the
// node's id for a node; ParentClusterID is a gray branch's parent in
// Apollo, 0 for every other cluster, and there are no branches here.
type ClusterDTO struct {
	ID              int64  `json:"id"`
	Name            string `json:"name"`
	AppID           string `json:"appId"`
	ParentClusterID int64  `json:"parentClusterId"`
	baseDTO
}

// OrganizationDTO is OpenOrganizationDto: an availability area.
type OrganizationDTO struct {
	OrgID   string `json:"orgId"`
	OrgName string `json:"orgName"`
}

// ItemDTO is OpenItemDTO: one key of a config file. LineNum is the key's
// place among the keys of the file as the cluster renders it, from 1.
type ItemDTO struct {
	Key     string `json:"key"`
	Type    int    `json:"type"`
	Value   string `json:"value"`
	Comment string `json:"comment,omitempty"`
	LineNum int    `json:"lineNum,omitempty"`
	baseDTO
}

// ItemPageDTO is OpenPageDTO<OpenItemDTO>.
type ItemPageDTO struct {
	Page    int       `json:"page"`
	Size    int       `json:"size"`
	Total   int64     `json:"total"`
	Content []ItemDTO `json:"content"`
}

// NamespaceDTO is OpenNamespaceDTO: a config file seen from one cluster.
type NamespaceDTO struct {
	AppID         string    `json:"appId"`
	ClusterName   string    `json:"clusterName"`
	NamespaceName string    `json:"namespaceName"`
	Comment       string    `json:"comment,omitempty"`
	Format        string    `json:"format"`
	IsPublic      bool      `json:"isPublic"`
	Items         []ItemDTO `json:"items"`
	baseDTO
}

// AppNamespaceDTO is OpenAppNamespaceDTO.
type AppNamespaceDTO struct {
	Name                  string `json:"name"`
	AppID                 string `json:"appId"`
	Format                string `json:"format"`
	IsPublic              bool   `json:"isPublic"`
	AppendNamespacePrefix bool   `json:"appendNamespacePrefix"`
	Comment               string `json:"comment,omitempty"`
	baseDTO
}

// NamespaceLockDTO is OpenNamespaceLockDTO.
type NamespaceLockDTO struct {
	NamespaceName string `json:"namespaceName"`
	IsLocked      bool   `json:"isLocked"`
	LockedBy      string `json:"lockedBy,omitempty"`
	// IsEmergencyPublishAllowed says whether the caller may publish past
	// the lock (isEmergencyPublish): a token with a release grant on the
	// namespace may.
	IsEmergencyPublishAllowed bool `json:"isEmergencyPublishAllowed"`
}

// ReleaseDTO is OpenReleaseDTO: one release (flush) of a layer.
type ReleaseDTO struct {
	ID             int64             `json:"id"`
	AppID          string            `json:"appId"`
	ClusterName    string            `json:"clusterName"`
	NamespaceName  string            `json:"namespaceName"`
	Name           string            `json:"name"`
	Configurations map[string]string `json:"configurations"`
	Comment        string            `json:"comment,omitempty"`
	baseDTO
}

// ReleaseDiffDTO is OpenReleaseDiffDTO.
type ReleaseDiffDTO struct {
	Changes []ReleaseChangeDTO `json:"changes"`
}

// ReleaseChangeDTO is OpenReleaseChangeDTO; ChangeType is ADDED, MODIFIED
// or DELETED.
type ReleaseChangeDTO struct {
	ChangeType string `json:"changeType"`
	Key        string `json:"key"`
	NewValue   string `json:"newValue,omitempty"`
	OldValue   string `json:"oldValue,omitempty"`
}

// errorBody is the body of every error answer, as Apollo's portal sends it.
type errorBody struct {
	Status    int    `json:"status"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	Exception string `json:"exception"`
}

// Request bodies. Fields Apollo's clients send that mean nothing here
// (times, display names, lineNum, extendInfo) are ignored, as Apollo's
// portal ignores fields it does not know.

// itemRequest is an OpenItemDTO as clients send it.
type itemRequest struct {
	Key                      *string `json:"key"`
	Value                    *string `json:"value"`
	Comment                  string  `json:"comment"`
	Type                     int     `json:"type"`
	DataChangeCreatedBy      string  `json:"dataChangeCreatedBy"`
	DataChangeLastModifiedBy string  `json:"dataChangeLastModifiedBy"`
}

// releaseRequest is NamespaceReleaseDTO.
type releaseRequest struct {
	ReleaseTitle       string `json:"releaseTitle"`
	ReleaseComment     string `json:"releaseComment"`
	ReleasedBy         string `json:"releasedBy"`
	IsEmergencyPublish bool   `json:"isEmergencyPublish"`
}

// clusterRequest is OpenClusterDTO as clients send it.
type clusterRequest struct {
	Name                string `json:"name"`
	AppID               string `json:"appId"`
	DataChangeCreatedBy string `json:"dataChangeCreatedBy"`
}

// InstancePageDTO is OpenInstancePageDTO.
type InstancePageDTO struct {
	Page      int           `json:"page"`
	Size      int           `json:"size"`
	Total     int64         `json:"total"`
	Instances []InstanceDTO `json:"instances"`
}

// InstanceDTO is OpenInstanceDTO: a node holding a namespace's file.
type InstanceDTO struct {
	ID          int64  `json:"id"`
	AppID       string `json:"appId"`
	ClusterName string `json:"clusterName"`
	DataCenter  string `json:"dataCenter,omitempty"`
	IP          string `json:"ip,omitempty"`
	// Configs is the release the node runs, or empty when none is known.
	Configs               []InstanceConfigDTO `json:"configs"`
	DataChangeCreatedTime gsonTime            `json:"dataChangeCreatedTime,omitzero"`
}

// InstanceConfigDTO is OpenInstanceConfigDTO: the release a node runs,
// applied when.
type InstanceConfigDTO struct {
	Release                    *ReleaseDTO `json:"release,omitempty"`
	ReleaseDeliveryTime        gsonTime    `json:"releaseDeliveryTime,omitzero"`
	DataChangeLastModifiedTime gsonTime    `json:"dataChangeLastModifiedTime,omitzero"`
}
