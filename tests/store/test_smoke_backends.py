from modelcycle import Workspace


def test_workspace_opens_on_each_backend(workspace: Workspace) -> None:
    events = workspace.audit.events()
    assert [e.action for e in events] == ["workspace.created"]
    assert workspace.audit.verify().ok
