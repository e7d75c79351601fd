"""Scale-out on PostgreSQL: leader election, control replicas that follow the leader, the replication wire."""
