#!/usr/bin/env python3
"""Write N mission cells of 5 agents and 10 tasks each (cell.json, the three config files,
the sub-directories) into DIR, as the cell spec lays them out. One cell in fifty has a failed
agent and one in a hundred a task past its timeout, so the scan has findings to report.
Times are relative to 2026-11-23T10:30:00Z (scan with --now). Usage: cellscan_cells.py N DIR"""
import json
import os
import sys
import uuid

n = int(sys.argv[1])
root = sys.argv[2]
ROLES = ["lead", "write", "write", "read", "audit"]


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


for i in range(n):
    cid = str(uuid.UUID(int=(0x5EED << 96) + i, version=4))
    d = os.path.join(root, cid)
    for sub in ["agents", "tasks", "checkpoints", "logs", "artifacts", "config"]:
        os.makedirs(os.path.join(d, sub))
    dump(os.path.join(d, "cell.json"), {
        "cell_id": cid, "mission_name": f"Mission {i}", "created_at": "2026-11-23T09:00:00Z",
        "created_by": "bench", "status": "active", "isolation_level": "level_1", "max_agents": 10,
        "timeout": 7200, "policies": {"auto_revive": "ask", "handoff_allowed": True, "checkpoint_interval": 300},
    })
    dump(os.path.join(d, "config/isolation.json"), {"level": "level_1", "mount_namespaces": True})
    dump(os.path.join(d, "config/policies.json"), {
        "auto_revive": "ask", "revive_timeout": 300, "substitute_agents": [], "handoff_allowed": True,
        "handoff_approval": "manual", "checkpoint_required": True, "max_retries": 3,
    })
    agents = [f"agent_{k:03d}" for k in range(1, 6)]
    dump(os.path.join(d, "config/permissions.json"), {
        a: {"read": [f"task_{k:03d}" for k in range(1, 11)], "write": [], "execute": [], "handoff_to": [], "handoff_from": []}
        for a in agents
    })
    for k, a in enumerate(agents):
        failed = k == 4 and i % 50 == 0
        dump(os.path.join(d, "agents", a + ".json"), {
            "agent_id": a, "name": f"Agent {k + 1}", "role": ROLES[k], "capabilities": ["coding", "testing", "review"],
            "gateway": f"gateway_{k % 2 + 1}", "status": "failed" if failed else "active",
            "current_task": f"task_{k + 1:03d}",
            "checkpoint": {"last_checkpoint": "2026-11-23T10:28:00Z", "context_hash": "sha256:9f86d081884c7d65",
                           "artifacts": ["notes.md"]},
        })
    for k in range(1, 11):
        t = f"task_{k:03d}"
        status = "completed" if k <= 3 else "in_progress" if k <= 6 else "pending"
        task = {
            "task_id": t, "title": f"Task {k} of mission {i}", "description": "Do the thing, then check it.",
            "assigned_to": agents[(k - 1) % 5], "status": status, "priority": ["high", "medium", "low"][k % 3],
            "dependencies": [f"task_{k - 1:03d}"] if k > 1 else [], "timeout": 3600, "artifacts": [],
            "created_at": "2026-11-23T09:05:00Z",
        }
        if status == "in_progress":
            task["started_at"] = "2026-11-23T08:00:00Z" if (i % 100 == 0 and k == 4) else "2026-11-23T10:00:00Z"
        if status == "completed":
            task["started_at"] = "2026-11-23T09:10:00Z"
            task["completed_at"] = "2026-11-23T09:40:00Z"
        dump(os.path.join(d, "tasks", t + ".json"), task)
