DROP TABLE data_subject_requests;
DROP TABLE change_log;
DROP TABLE services;
DROP TABLE contacts;
DROP TABLE company_confidential;
DROP TABLE companies;
DROP TABLE organizations;
