#!/bin/sh
# version.sh VERSION prints the Debian version of a gopmd VERSION (the
# git describe of a checkout): v0.1.0 gives 0.1.0, v0.1.0-3-gabcdef (three
# commits after the tag) 0.1.0+3.gabcdef, abcdef (no tag yet) 0~git.abcdef;
# a -dirty suffix becomes +dirty.
v=$1
case "$v" in
v[0-9]*) v=${v#v} ;;
*) v=0~git.$v ;;
esac
echo "$v" | sed -e 's/-\([0-9][0-9]*\)-g\([0-9a-f]*\)/+\1.g\2/' -e 's/-dirty$/+dirty/'
