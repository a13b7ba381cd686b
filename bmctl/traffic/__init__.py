"""Traffic control: the budget ledger and its buckets, the priority queue, routes and the controller."""
