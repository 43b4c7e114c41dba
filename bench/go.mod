module github.com/mycorrizal/mycorrizal/bench

go 1.26.0

require github.com/mycorrizal/mycorrizal v0.0.0

replace github.com/mycorrizal/mycorrizal => ../
