"""Traffic control: token buckets, the priority queue, routes and the controller."""
