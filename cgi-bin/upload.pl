#!/usr/bin/perl
# multipart/form-data upload with CGI.pm (Debian: libcgi-pm-perl).
# Reports each uploaded file's name, size and MD5 instead of storing it.
use strict;
use warnings;
use CGI;
use Digest::MD5;

$CGI::POST_MAX = 16 * 1024 * 1024;
my $q = CGI->new;
if (my $err = $q->cgi_error) {
    print $q->header(-status => $err, -type => 'text/plain'), "$err\n";
    exit 0;
}
print $q->header(-type => 'text/plain', -charset => 'utf-8');
print "method: ", $q->request_method, "\n";
for my $name (sort $q->param) {
    my @fhs = $q->upload($name);
    if (@fhs && defined $fhs[0]) {
        for my $fh (@fhs) {
            binmode $fh;
            my $md5 = Digest::MD5->new->addfile($fh)->hexdigest;
            my $size = -s $fh;
            printf "file %s: %s %d bytes md5 %s\n", $name, scalar($q->param($name)), $size, $md5;
        }
    } else {
        printf "field %s: %s\n", $name, join(',', $q->multi_param($name));
    }
}
