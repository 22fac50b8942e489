module pagealloc/workloads

go 1.23
