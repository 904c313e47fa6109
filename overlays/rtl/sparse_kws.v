// sparse_kws: IP wrapper of sk_top with the interface names of the block design (aclk, aresetn, s_axi_control)
`default_nettype none
`timescale 1ns / 1ps

module sparse_kws #(
    parameter N_COPIES      = 1,    // core copies behind the map-reduce (REG.N_COPIES)
    parameter IN_FIFO_DEPTH = 16,   // input beats buffered per copy
    parameter RES_DEPTH     = 2,    // results buffered per copy
    parameter CONV1_PHASES  = 2,    // engine sizes of every copy (sk_core; the block design's CORE_CONFIGS)
    parameter CONV2_PHASES  = 1,
    parameter FC1_LANES     = 8,
    parameter CONV2_WBRAM   = 0,
    parameter CONV2_RBRAM   = 0,
    parameter FC1_PINGPONG  = 1
) (
    input  wire        aclk,
    input  wire        aresetn,     // active low, synchronous

    input  wire [11:0] s_axi_control_awaddr,
    input  wire [2:0]  s_axi_control_awprot,
    input  wire        s_axi_control_awvalid,
    output wire        s_axi_control_awready,
    input  wire [31:0] s_axi_control_wdata,
    input  wire [3:0]  s_axi_control_wstrb,
    input  wire        s_axi_control_wvalid,
    output wire        s_axi_control_wready,
    output wire [1:0]  s_axi_control_bresp,
    output wire        s_axi_control_bvalid,
    input  wire        s_axi_control_bready,
    input  wire [11:0] s_axi_control_araddr,
    input  wire [2:0]  s_axi_control_arprot,
    input  wire        s_axi_control_arvalid,
    output wire        s_axi_control_arready,
    output wire [31:0] s_axi_control_rdata,
    output wire [1:0]  s_axi_control_rresp,
    output wire        s_axi_control_rvalid,
    input  wire        s_axi_control_rready,

    input  wire [63:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    input  wire        s_axis_tlast,

    output wire [63:0] m_axis_tdata,
    output wire        m_axis_tvalid,
    input  wire        m_axis_tready,
    output wire        m_axis_tlast
);

sk_top #(.N_COPIES(N_COPIES), .IN_FIFO_DEPTH(IN_FIFO_DEPTH), .RES_DEPTH(RES_DEPTH),
        .CONV1_PHASES(CONV1_PHASES), .CONV2_PHASES(CONV2_PHASES), .FC1_LANES(FC1_LANES),
        .CONV2_WBRAM(CONV2_WBRAM), .CONV2_RBRAM(CONV2_RBRAM), .FC1_PINGPONG(FC1_PINGPONG)) top_inst (
    .clk(aclk), .rst(!aresetn),
    .s_axil_awaddr(s_axi_control_awaddr), .s_axil_awprot(s_axi_control_awprot),
    .s_axil_awvalid(s_axi_control_awvalid), .s_axil_awready(s_axi_control_awready),
    .s_axil_wdata(s_axi_control_wdata), .s_axil_wstrb(s_axi_control_wstrb),
    .s_axil_wvalid(s_axi_control_wvalid), .s_axil_wready(s_axi_control_wready),
    .s_axil_bresp(s_axi_control_bresp), .s_axil_bvalid(s_axi_control_bvalid), .s_axil_bready(s_axi_control_bready),
    .s_axil_araddr(s_axi_control_araddr), .s_axil_arprot(s_axi_control_arprot),
    .s_axil_arvalid(s_axi_control_arvalid), .s_axil_arready(s_axi_control_arready),
    .s_axil_rdata(s_axi_control_rdata), .s_axil_rresp(s_axi_control_rresp),
    .s_axil_rvalid(s_axi_control_rvalid), .s_axil_rready(s_axi_control_rready),
    .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .s_axis_tlast(s_axis_tlast),
    .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
    .m_axis_tlast(m_axis_tlast)
);

endmodule

`resetall
